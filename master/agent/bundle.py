"""The node-agent bundle: Salt and its dependencies, installed and byte-compiled, ready to unpack.

Nodes have Python 3 and nothing else, and never reach the internet, so the controller serves,
for each Python minor version and architecture it supports, a tarball of a finished
site-packages directory (Salt at the controller's own pinned version plus every dependency),
and a manifest of sha256 checksums. conjurer only verifies it, unpacks it into its own venv
under /opt/kubesalt and writes the launchers: no pip, resolver or compiler runs on a node.

Format 2 (the tarball):

    kubesalt-agent.json     {"format", "python", "arch", "salt", "kubesalt", "compiled",
                             "scripts": {name: "module:function"}, "packages": [...]}
    site-packages/...       regular files only; what the node's venv site-packages holds

Where the files come from:
- for the controller's own Python and architecture, the controller's own environment: Salt and
  its dependency closure exactly as installed beside this controller (each distribution's
  RECORD), with the .pyc files pip made there, less what never runs on a node (NOT_FOR_NODES).
  No network, no pip, a few seconds, and nodes run the very versions the controller was
  tested with.
- otherwise (another Python or architecture, a wheel directory, or an environment whose
  closure cannot be read from its metadata), `pip install --target`; for another Python, from
  binary wheels for its manylinux platform.

Bytecode ships for the modules a starting minion imports (see STARTUP_ROOTS for why not all):
made here for the controller's own Python minor version (any architecture: bytecode does not
depend on it), or by another Python when this machine has it (`python3.X` on PATH). Without
one, a bundle for another Python ships sources only ("compiled": false) and the minion
compiles what it imports on its first start. Every member's mtime is EPOCH and every .pyc
records EPOCH as its source's mtime, so the same input files give the same bytes and the .pyc
files stay valid on the node.
"""

import contextlib
import fcntl
import gzip
import importlib.metadata
import importlib.util
import io
import json
import marshal
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import salt.version
from packaging.markers import default_environment
from packaging.requirements import Requirement

from kubesalt.minion_bootstrap.agent import BUNDLE_INFO, sha256_file

MANIFEST = "manifest.json"
FORMAT = 2
# 2020-01-01: any fixed time does; 0 would read as "no time" to some tools.
EPOCH = 1577836800
SITE = "site-packages"
# The launchers conjurer writes: the minion, and salt-call for looking at a node by hand.
SCRIPTS = ("salt-minion", "salt-call")
# Oldest glibc a bundle for another Python/architecture may need: RHEL 9's. The controller's
# own bundle has whatever the controller's environment has.
DEFAULT_GLIBC = (2, 34)
ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
PIP_LOG = "agent-bundle.log"


class BundleError(RuntimeError):
    pass


class _NotFromEnvironment(Exception):
    """The controller's environment cannot give this bundle; build it with pip instead."""


def python_tag(version_info=None):
    version_info = version_info or sys.version_info
    return f"cp{version_info[0]}{version_info[1]}"


def own_python():
    return "%d.%d" % sys.version_info[:2]


def own_arch():
    return ARCH_ALIASES.get(platform.machine(), platform.machine())


def kubesalt_version():
    try:
        return importlib.metadata.version("kubesalt")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def bundle_name(tag, arch):
    return f"kubesalt-agent-salt{salt.version.__version__}-{tag}-{arch}.tar.gz"


# ---- the controller's own environment -------------------------------------------------------


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


# Salt requires these for what never runs on a node: salt-cloud's libcloud drivers (3,000
# files, 30 MB), salt-api's CherryPy server, and virtualenv for the virtualenv execution
# module, which kubesalt's states do not use. Salt imports each only inside the function that
# needs it, so a minion without them starts and runs every state. Leaving them (and what only
# they need) out of the bundle spares each node a third of the files it would create. (A
# bundle pip builds, for another Python or from a wheelhouse, holds all that pip installed.)
NOT_FOR_NODES = ("apache-libcloud", "cherrypy", "virtualenv")


def closure(root="salt", leave_out=NOT_FOR_NODES):
    """`root` and every distribution it needs in this environment, for this interpreter (its
    markers evaluated here), as importlib.metadata distributions sorted by name; without
    `leave_out` and what only they need."""
    environment = default_environment()
    found = {}
    skipped = {_canonical(name) for name in leave_out}
    pending = [(root, ("",))]
    while pending:
        name, extras = pending.pop()
        key = _canonical(name)
        if key in found or key in skipped:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise _NotFromEnvironment(f"{name} is not installed beside the controller") \
                from None
        found[key] = dist
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or any(
                    requirement.marker.evaluate({**environment, "extra": extra})
                    for extra in extras):
                pending.append((requirement.name, ("", *requirement.extras)))
    return [found[key] for key in sorted(found)]


def _environment_files(dists):
    """(arcname, path) of every installed file of `dists` inside its site directory: scripts
    (../../bin/...) are written on the node, and .pyc files are made by the packer."""
    files = {}
    for dist in dists:
        name = dist.metadata["Name"]
        if dist.files is None:
            raise _NotFromEnvironment(f"{name} has no RECORD of its files")
        direct = dist.read_text("direct_url.json")
        if direct and json.loads(direct).get("dir_info", {}).get("editable"):
            raise _NotFromEnvironment(f"{name} is an editable install")
        site = os.path.normpath(str(dist.locate_file("")))
        for record in dist.files:
            path = os.path.normpath(os.path.join(site, str(record)))
            relative = os.path.relpath(path, site)
            relative = relative.replace(os.sep, "/")
            if relative.startswith("../") or "__pycache__" in relative.split("/") \
                    or relative.endswith((".pyc", ".pyo")) or not shipped(relative) \
                    or not os.path.isfile(path):
                continue
            files[f"{SITE}/{relative}"] = path
    return files


def shipped(relative):
    """Does the file at `relative` (to site-packages) go into the bundle? Not what a running
    agent never imports or reads, since every file costs a node time to create (0.3 to 0.7 ms
    of kernel time on the lab's overlay file systems): a package's own test suite (libcloud's
    alone is 2,300 fixture files; `import libcloud.test` is for libcloud's developers) and
    type stubs."""
    parts = relative.split("/")
    if len(parts) > 2 and parts[1] in ("test", "tests") and not parts[0].endswith(
            (".dist-info", ".data")):
        return False
    return not relative.endswith((".pyi", "/py.typed"))


def _scripts_from(entry_points_text):
    """The console scripts in SCRIPTS, from an entry_points.txt."""
    scripts, section = {}, None
    for raw in (entry_points_text or "").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
        elif section == "console_scripts" and "=" in line:
            name, target = (part.strip() for part in line.split("=", 1))
            if name in SCRIPTS:
                scripts[name] = target.split()[0]
    missing = [name for name in SCRIPTS if name not in scripts]
    if missing:
        raise BundleError(f"salt's console scripts lack {', '.join(missing)}")
    return scripts


# ---- pip -------------------------------------------------------------------------------------


def manylinux_platforms(arch, glibc=DEFAULT_GLIBC):
    """pip --platform values a node with glibc `glibc` runs, newest first."""
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc[1], 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms += [f"{tag}_{arch}" for minor, tag in legacy.items() if minor <= glibc[1]]
    return platforms


def _pip(argv, log, check=True):
    """Run pip (or another build step), its output into `log`."""
    log.write(f"\n$ {' '.join(argv)}\n")
    log.flush()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                          check=False)
    if check and proc.returncode != 0:
        raise BundleError(f"{'pip' if 'pip' in argv else argv[0]} failed (exit "
                          f"{proc.returncode}); see {log.name}")


# py_compile in another Python: argv = [display prefix, site directory, sources...]
_COMPILE_SCRIPT = r"""
import os, py_compile, sys
prefix, site = sys.argv[1:3]
for source in sys.argv[3:]:
    try:
        py_compile.compile(source, dfile=prefix + "/" + os.path.relpath(source, site),
                           doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    except py_compile.PyCompileError as exc:
        print(exc.msg)
"""


def interpreter_for(version):
    """The path of a Python `version` ("3.X") on this machine (python3.X on PATH), or None."""
    found = shutil.which(f"python{version}")
    if not found:
        return None
    try:
        proc = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2]);"
                                            " print(sys.executable)"],
                              capture_output=True, text=True, timeout=60, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.split("\n")
    if proc.returncode != 0 or len(lines) < 2 or lines[0] != version:
        return None  # e.g. a pyenv shim for a version that is not selected
    return lines[1]


def _pip_install(stage, version, arch, wheelhouse, log):
    """Salt and its dependencies into `stage` with pip, for Python `version` on `arch`.
    Returns (files, scripts, packages, pyc) where pyc says who makes the .pyc files: "pack"
    (this Python's bytecode: the packer compiles), "made" (compiled here by that Python,
    already among `files`) or None (nobody can)."""
    pin = f"salt=={salt.version.__version__}"
    source = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    common = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    extra, pyc, interpreter = [], "pack", None
    if version != own_python() and arch == own_arch():
        interpreter = interpreter_for(version)
    if interpreter:
        # That Python on this machine: pip resolves, builds sdists (timelib has no wheels)
        # and evaluates Salt's python_version markers for it, as on the node.
        common[3:3] = ["--python", interpreter]
        pyc = "made"
    elif (version, arch) != (own_python(), own_arch()):
        # Salt itself is published as an sdist only; its wheel is pure Python and fits every
        # Python 3, so build it here and let --only-binary take it from there.
        salt_wheels = Path(stage).parent / "salt-wheel"
        _pip([*common, "wheel", "--no-deps", "--wheel-dir", str(salt_wheels), *source, pin],
             log)
        extra = ["--find-links", str(salt_wheels), "--only-binary=:all:",
                 "--python-version", version, "--implementation", "cp"]
        for name in [*manylinux_platforms(arch), f"linux_{arch}"]:
            extra += ["--platform", name]
        pyc = "pack" if version == own_python() else None
    try:
        _pip([*common, "install", "--target", str(stage), "--no-compile", *source, *extra,
              pin], log)
    except BundleError as exc:
        if extra:
            raise BundleError(
                f"{exc}. For Python {version} on {arch}, pip takes binary wheels only, and "
                f"not every dependency of salt {salt.version.__version__} has them; give "
                f"--wheelhouse DIR with wheels built by Python {version} on {arch} "
                f"(python{version} -m pip wheel -w DIR salt=={salt.version.__version__})"
                + (f", or install python{version} on this controller" if arch == own_arch()
                   else "")) from None
        raise
    site = Path(stage)
    if pyc == "made":
        for path in site.rglob("*.py"):
            os.utime(path, (EPOCH, EPOCH))
        sources = startup_sources(interpreter, [site], log)
        if sources is None:
            # -d: tracebacks name site-packages/..., not this build's temporary directory
            _pip([interpreter, "-m", "compileall", "-q", "-j", "0", "-d", SITE,
                  "--invalidation-mode", "timestamp", str(site)], log, check=False)
        else:
            listed = sorted(p for p in sources if Path(p).is_relative_to(site.resolve()))
            _pip([interpreter, "-c", _COMPILE_SCRIPT, SITE, str(site.resolve()), *listed], log,
                 check=False)
    files = {}
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site)
        # pip --target puts console scripts (with this machine's shebang) under bin/
        if relative.parts[0] == "bin" or not path.is_file() or path.is_symlink() or (
                pyc != "made" and ("__pycache__" in relative.parts
                                   or path.suffix in (".pyc", ".pyo"))):
            continue
        # a test suite's compiled files live in its __pycache__, below the same directory
        if not shipped(relative.as_posix().replace("/__pycache__/", "/")):
            continue
        files[f"{SITE}/{relative.as_posix()}"] = str(path)
    infos = list(site.glob("salt-*.dist-info"))
    if not infos:
        raise BundleError(f"pip installed no salt into {stage}; see {log.name}")
    scripts = _scripts_from((infos[0] / "entry_points.txt").read_text())
    packages = sorted(_dist_info_name(p.name) for p in site.glob("*.dist-info"))
    return files, scripts, packages, pyc


def _dist_info_name(dirname):
    name, _, version = dirname[:-len(".dist-info")].partition("-")
    return f"{_canonical(name)}=={version}"


# ---- which modules get bytecode --------------------------------------------------------------

# What a starting minion imports: its entry points, its transports and the loader, and every
# grains module (the loader imports them all at start). Their .pyc files ship, about 500, so
# the minion starts without compiling; the other ~3,200 modules (execution and state modules,
# cloud drivers, most of the dependencies) compile once, when first used on the node. Every
# .pyc shipped is one more file each node creates, and on a small node creating files is what
# installing the agent costs (measured in the lab: ~9,000 files take 3 to 10 s, 5,700 take 2
# to 6 s; compiling the start-up modules instead takes 1.7 s of CPU at every first start).
STARTUP_ROOTS = ("salt.scripts", "salt.cli.daemons", "salt.minion", "salt.crypt",
                 "salt.channel.client", "salt.transport.zeromq", "salt.transport.tcp",
                 "salt.loader", "salt.utils.event", "salt.cache.localfs_key",
                 "tornado.platform.asyncio", "salt.grains")
_STARTUP_SCRIPT = r"""
import importlib, json, os, pkgutil, sys
sys.path[:0] = sys.argv[2:]
for name in json.loads(sys.argv[1]):
    try:
        module = importlib.import_module(name)
    except Exception:
        continue
    if name == "salt.grains":
        for found in pkgutil.iter_modules(module.__path__, name + "."):
            try:
                importlib.import_module(found.name)
            except Exception:
                pass
print(json.dumps(sorted({os.path.realpath(m.__file__) for m in list(sys.modules.values())
                         if str(getattr(m, "__file__", None) or "").endswith(".py")})))
"""


def startup_sources(python, paths=(), log=None):
    """Real paths of the .py files a starting minion imports, found by importing what it
    imports in a fresh `python` (`paths` instead of its site-packages, when given); None when
    that does not work (then every module gets bytecode)."""
    argv = [python, "-I", *(["-S"] if paths else []), "-c", _STARTUP_SCRIPT,
            json.dumps(STARTUP_ROOTS), *map(str, paths)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                              stdin=subprocess.DEVNULL)
        found = set(json.loads(proc.stdout)) if proc.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        found = None
    if not found and log:
        log.write("could not list the modules a starting minion imports; every module gets "
                  "a .pyc\n")
    return found or None


def _startup_arcnames(files, sources):
    """The arcnames of `files` that are among `sources` (real paths); True (all) for None."""
    if sources is None:
        return True
    return {arcname for arcname, path in files.items() if os.path.realpath(path) in sources}


# ---- packing --------------------------------------------------------------------------------


def _pyc(source_path, existing=None, name=None):
    """Bytecode for `source_path` as a timestamp .pyc recording EPOCH and the source's size:
    `existing` (the environment's own .pyc) when it is valid for that source, else compiled
    now, as file `name` (a temporary directory's name would make every build differ; Python
    puts the real path in when it loads the .pyc). None when the file does not compile (it
    ships as source; importing it fails there too)."""
    stat = os.stat(source_path)
    size = stat.st_size & 0xFFFFFFFF
    if existing and os.path.isfile(existing):
        with open(existing, "rb") as handle:
            data = handle.read()
        magic, flags, mtime, recorded = data[:4], *struct.unpack("<III", data[4:16])
        if magic == importlib.util.MAGIC_NUMBER and flags == 0 and recorded == size \
                and mtime == int(stat.st_mtime) & 0xFFFFFFFF:
            return data[:8] + struct.pack("<II", EPOCH, size) + data[16:]
    with open(source_path, "rb") as handle:
        source = handle.read()
    try:
        code = compile(source, name or source_path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    return importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, EPOCH, size) + \
        marshal.dumps(code)


def _member(name, size, mode):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(files, info, dest, compile_pyc, existing_pyc=None):
    """Write the bundle tarball: `info` as BUNDLE_INFO, then `files` ({arcname: path}) in name
    order, each .py followed by its .pyc when `compile_pyc` is True or holds its arcname.
    Same input, same bytes: fixed mtimes, owners and modes, and no name or time in the gzip
    header. Returns (.pyc files written, sources that do not compile)."""
    existing_pyc = existing_pyc or (lambda path: None)
    wanted = (lambda arcname: compile_pyc is True or arcname in compile_pyc) \
        if compile_pyc else (lambda arcname: False)
    cache_tag = sys.implementation.cache_tag
    compiled = failed = 0
    with open(dest, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = json.dumps(info, indent=2, sort_keys=True).encode() + b"\n"
        tar.addfile(_member(BUNDLE_INFO, len(data), 0o644), io.BytesIO(data))
        for arcname in sorted(files):
            path = files[arcname]
            mode = 0o755 if os.stat(path).st_mode & 0o111 else 0o644
            with open(path, "rb") as handle:
                tar.addfile(_member(arcname, os.fstat(handle.fileno()).st_size, mode), handle)
            if not (arcname.endswith(".py") and wanted(arcname)):
                continue
            pyc = _pyc(path, existing_pyc(path), arcname)
            if pyc is None:
                failed += 1
                continue
            compiled += 1
            directory, _, filename = arcname.rpartition("/")
            tar.addfile(_member(f"{directory}/__pycache__/{filename[:-3]}.{cache_tag}.pyc",
                                len(pyc), 0o644), io.BytesIO(pyc))
    return compiled, failed


# ---- the artifact store ----------------------------------------------------------------------


def agent_dir(artifacts_dir):
    return Path(artifacts_dir) / "agent"


@contextlib.contextmanager
def _locked(artifacts_dir):
    """One build or manifest change at a time (two `start`s, or `start` and `agent-bundle`)."""
    directory = agent_dir(artifacts_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def read_manifest(artifacts_dir):
    try:
        with open(agent_dir(artifacts_dir) / MANIFEST, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (FileNotFoundError, ValueError):
        return {"format": FORMAT, "bundles": []}
    if manifest.get("format") != FORMAT:
        # format 1 held wheels for pip on the node; today's conjurer cannot install those
        manifest = {"format": FORMAT, "bundles": []}
    return manifest


def _write_json(path, data):
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def normalize(python=None, arch=None):
    """(version "3.X", tag "cp3X", arch) for the requested or the controller's own target."""
    version = python or own_python()
    if not re.fullmatch(r"3\.\d{1,2}", version):
        raise BundleError(f"--python {version}: give a Python 3 minor version such as 3.10")
    arch = ARCH_ALIASES.get(arch, arch) if arch else own_arch()
    if arch not in ("x86_64", "aarch64"):
        raise BundleError(f"--arch {arch}: x86_64 or aarch64")
    return version, "cp" + version.replace(".", ""), arch


def build(artifacts_dir, python=None, arch=None, wheelhouse=None, log_file=None, say=None):
    """Build the bundle for Python `python` ("3.X", default this controller's) on `arch`
    (default this machine's) into the artifact store and record it in the manifest; returns
    the manifest entry. pip's output, if pip runs, goes to `log_file`; `say(line)` is told
    each step as it starts."""
    version, tag, arch = normalize(python, arch)
    if wheelhouse and not any(w.name.lower().startswith("salt-")
                              for w in Path(wheelhouse).glob("*.whl")):
        raise BundleError(f"{wheelhouse} has no salt wheel; put salt-"
                          f"{salt.version.__version__} and its dependencies' wheels there")
    with _locked(artifacts_dir):
        return _build(artifacts_dir, version, tag, arch, wheelhouse, log_file, say)


def log_tail(log_file, since=0, lines=10):
    """The last `lines` lines written to a build log after its first `since` bytes (pip says
    what went wrong at the end of its output), or []."""
    try:
        with open(log_file, "rb") as handle:
            handle.seek(since)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _build(artifacts_dir, version, tag, arch, wheelhouse, log_file, say=None):
    log_path = Path(log_file) if log_file else Path(tempfile.gettempdir()) / PIP_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    say = say or (lambda line: None)
    started = time.monotonic()
    pin = f"salt {salt.version.__version__}"
    with tempfile.TemporaryDirectory(prefix="ks-agent-") as work:
        existing_pyc, source, pyc, sources = None, None, "pack", None
        if (version, arch) == (own_python(), own_arch()) and not wheelhouse:
            say(f"taking {pin} and its dependencies from the controller's own environment")
            try:
                dists = closure()
                files = _environment_files(dists)
                salt_dist = next(d for d in dists if _canonical(d.metadata["Name"]) == "salt")
                scripts = _scripts_from(salt_dist.read_text("entry_points.txt"))
                packages = [f"{_canonical(d.metadata['Name'])}=={d.version}" for d in dists]
                source = "controller"
                with open(log_path, "a", encoding="utf-8") as log:
                    sources = startup_sources(sys.executable, log=log)

                def existing_pyc(path):
                    return importlib.util.cache_from_source(path)
            except _NotFromEnvironment as exc:
                with open(log_path, "a", encoding="utf-8") as log:
                    log.write(f"not from the controller's environment ({exc}); using pip\n")
        if source is None:
            say(f"installing {pin} and its dependencies for Python {version} on {arch} with "
                f"pip, from {wheelhouse or 'the package index'} (its output: {log_path})")
            with open(log_path, "a", encoding="utf-8") as log:
                stage = Path(work) / "site"
                files, scripts, packages, pyc = _pip_install(stage, version, arch,
                                                             wheelhouse, log)
                if pyc == "pack" and arch == own_arch():
                    # (another machine's extension modules do not import here)
                    sources = startup_sources(sys.executable, [stage], log)
            source = "wheelhouse" if wheelhouse else "pip"
        compiled = pyc is not None
        info = {"format": FORMAT, "python": tag, "arch": arch,
                "salt": salt.version.__version__, "kubesalt": kubesalt_version(),
                "compiled": compiled, "scripts": scripts, "packages": packages}
        directory = agent_dir(artifacts_dir)
        name = bundle_name(tag, arch)
        say(f"packing {len(files)} files into {directory / name}")
        tmp = directory / (name + ".tmp")
        try:
            made, failed = pack(files, info, tmp,
                                pyc == "pack" and _startup_arcnames(files, sources),
                                existing_pyc)
            os.replace(tmp, directory / name)
        finally:
            tmp.unlink(missing_ok=True)
        if pyc == "made":
            made = sum(1 for arcname in files if arcname.endswith(".pyc"))
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {name}: {len(packages)} packages "
                      f"from {source}, {len(files)} files, {made} .pyc ({failed} sources do "
                      f"not compile), {time.monotonic() - started:.1f} s\n")
        entry = {"python": tag, "arch": arch, "file": name, "format": FORMAT,
                 "salt": info["salt"], "kubesalt": info["kubesalt"], "compiled": compiled,
                 "source": source, "pyc": made, "size": (directory / name).stat().st_size,
                 "sha256": sha256_file(directory / name),
                 "build_seconds": round(time.monotonic() - started, 1)}
        manifest = read_manifest(artifacts_dir)
        manifest["bundles"] = sorted(
            [b for b in manifest["bundles"] if (b["python"], b["arch"]) != (tag, arch)]
            + [entry], key=lambda b: (b["python"], b["arch"]))
        _write_json(directory / MANIFEST, manifest)
    return entry


def stale_reason(artifacts_dir, tag, arch):
    """Why the bundle for (tag, arch) must be (re)built, or None when it is up to date: in
    the manifest for this Salt, this kubesalt and this format, its file there with its
    checksum. No pip and no network: cheap enough for every start."""
    entry = next((b for b in read_manifest(artifacts_dir)["bundles"]
                  if (b.get("python"), b.get("arch")) == (tag, arch)), None)
    if entry is None:
        return "none built yet"
    for key, want in (("format", FORMAT), ("salt", salt.version.__version__),
                      ("kubesalt", kubesalt_version())):
        if entry.get(key) != want:
            return f"{key} {entry.get(key)} -> {want}"
    path = agent_dir(artifacts_dir) / entry["file"]
    if not path.is_file():
        return f"{entry['file']} is missing"
    if sha256_file(path) != entry["sha256"]:
        return f"{entry['file']} does not match its checksum"
    return None


def ensure(artifacts_dir, log_file, say=None):
    """Build the bundle for this controller's own Python and architecture when it is missing
    or stale; returns (entry, built)."""
    _, tag, arch = normalize()
    reason = stale_reason(artifacts_dir, tag, arch)
    if reason is None:
        return _entry(artifacts_dir, tag, arch), False
    if say:
        say(f"building the node-agent bundle for {tag}/{arch}, salt "
            f"{salt.version.__version__} ({reason}; details in {log_file})")
    with _locked(artifacts_dir):
        # another start may have built it while this one waited for the lock
        if stale_reason(artifacts_dir, tag, arch) is None:
            return _entry(artifacts_dir, tag, arch), False
        return _build(artifacts_dir, own_python(), tag, arch, None, log_file), True


def _entry(artifacts_dir, tag, arch):
    return next(b for b in read_manifest(artifacts_dir)["bundles"]
                if (b["python"], b["arch"]) == (tag, arch))


def summary(artifacts_dir):
    """The bundles in the store, for `status`."""
    return [{"python": b["python"], "arch": b["arch"], "salt": b.get("salt"),
             "size_mb": round(b.get("size", 0) / 1e6, 1), "compiled": b.get("compiled"),
             "file": b["file"]}
            for b in read_manifest(artifacts_dir)["bundles"]]
