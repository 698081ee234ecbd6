"""The node-agent bundle builder: what goes in, that the same input gives the same bytes, that the
.pyc files stay valid on a node, and when `start` must build again."""

import hashlib
import importlib.util
import io
import json
import os
import py_compile
import re
import struct
import sys
import tarfile
import zipfile

import pytest
import salt.version

from kubesalt.master.agent import bundle as agent_bundle
from kubesalt.minion_bootstrap import agent

SALT = salt.version.__version__
CACHE_TAG = sys.implementation.cache_tag


def _members(path):
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: (m, tar.extractfile(m).read()) for m in tar.getmembers()}


def _wheel(directory, name, version, files, requires=(), entry_points=""):
    """A minimal pure-Python wheel, enough for pip install --no-index."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    contents = dict(files)
    contents[f"{dist_info}/METADATA"] = metadata
    contents[f"{dist_info}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: test\n"
                                      "Root-Is-Purelib: true\nTag: py3-none-any\n")
    if entry_points:
        contents[f"{dist_info}/entry_points.txt"] = entry_points
    contents[f"{dist_info}/RECORD"] = "".join(f"{p},,\n" for p in contents) + \
        f"{dist_info}/RECORD,,\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for arcname, text in contents.items():
            whl.writestr(arcname, text)
    return path


SCRIPTS = "[console_scripts]\nsalt-minion = salt.scripts:salt_minion\n" \
          "salt-call = salt.scripts:salt_call\nsalt-master = salt.scripts:salt_master\n"


@pytest.fixture
def wheelhouse(tmp_path):
    """A fake salt at the controller's version needing one fake dependency."""
    directory = tmp_path / "wheels"
    directory.mkdir()
    _wheel(directory, "salt", SALT, {
        "salt/__init__.py": "",
        "salt/scripts.py": "import fakedep\n\n\ndef salt_minion():\n    return 0\n",
        "salt/grains/__init__.py": "",
        "salt/grains/core.py": "",
        "salt/modules/__init__.py": "",
        "salt/modules/cmdmod.py": "",
        "salt/broken.py": "def (:\n",
    }, requires=["fakedep>=1"], entry_points=SCRIPTS)
    _wheel(directory, "fakedep", "1.0", {"fakedep.py": "VALUE = 1\n"})
    return directory


def test_a_wheelhouse_bundle_holds_salt_its_dependencies_and_their_bytecode(tmp_path,
                                                                            wheelhouse):
    store = tmp_path / "store"
    entry = agent_bundle.build(store, wheelhouse=wheelhouse, log_file=tmp_path / "log")
    tag = agent_bundle.python_tag()
    assert (entry["python"], entry["arch"], entry["format"]) == (tag, agent_bundle.own_arch(), 2)
    assert entry["source"] == "wheelhouse" and entry["compiled"] and entry["salt"] == SALT
    path = store / "agent" / entry["file"]
    assert entry["sha256"] == agent.sha256_file(path) and entry["size"] == path.stat().st_size
    manifest = json.loads((store / "agent" / "manifest.json").read_text())
    assert manifest == {"format": 2, "bundles": [entry]}

    members = _members(path)
    names = list(members)
    assert names[0] == agent.BUNDLE_INFO
    info = json.loads(members[agent.BUNDLE_INFO][1])
    assert info["scripts"] == {"salt-minion": "salt.scripts:salt_minion",
                               "salt-call": "salt.scripts:salt_call"}
    assert info["packages"] == ["fakedep==1.0", f"salt=={SALT}"]
    assert "site-packages/fakedep.py" in names and "site-packages/salt/scripts.py" in names
    # bytecode for what a starting minion imports (its scripts and what they import, every
    # grains module), not for what it loads later, when used
    pycs = {n for n in names if n.endswith(".pyc")}
    assert pycs == {f"site-packages/{name}.{CACHE_TAG}.pyc" for name in (
        "salt/__pycache__/__init__", "salt/__pycache__/scripts", "__pycache__/fakedep",
        "salt/grains/__pycache__/__init__", "salt/grains/__pycache__/core")}
    assert entry["pyc"] == len(pycs)
    assert "site-packages/salt/modules/cmdmod.py" in names and "site-packages/salt/broken.py" \
        in names
    # pip's console scripts name this machine's Python; nodes write their own
    assert not any(n.startswith("site-packages/bin/") for n in names)
    for member, _ in members.values():
        assert member.isreg() and member.mtime == agent_bundle.EPOCH
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
    pyc = members[f"site-packages/salt/__pycache__/scripts.{CACHE_TAG}.pyc"][1]
    source = members["site-packages/salt/scripts.py"][1]
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert struct.unpack("<III", pyc[4:16]) == (0, agent_bundle.EPOCH, len(source))
    assert "from wheelhouse" in (tmp_path / "log").read_text()
    # pip again, into another temporary directory: the same bytes
    again = agent_bundle.build(tmp_path / "again", wheelhouse=wheelhouse,
                               log_file=tmp_path / "log")
    assert again["sha256"] == entry["sha256"]


def test_the_same_input_gives_the_same_bytes(tmp_path):
    files = {}
    for name, text in (("a.py", "A = 1\n"), ("pkg/b.py", "B = 2\n"), ("pkg/data.txt", "x")):
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files[f"site-packages/{name}"] = str(path)
    info = {"format": 2, "python": agent_bundle.python_tag()}
    agent_bundle.pack(files, info, tmp_path / "one.tar.gz", True)
    # another time, another mtime: still the same bytes
    os.utime(tmp_path / "src" / "a.py", (1, 1))
    agent_bundle.pack(dict(reversed(files.items())), info, tmp_path / "two.tar.gz", True)
    assert (tmp_path / "one.tar.gz").read_bytes() == (tmp_path / "two.tar.gz").read_bytes()


def test_an_environment_pyc_is_reused_with_the_fixed_mtime_or_made_again(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("X = 1\n")
    cached = py_compile.compile(str(source), cfile=str(tmp_path / "mod.pyc"),
                                invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    fresh = agent_bundle._pyc(str(source))
    reused = agent_bundle._pyc(str(source), cached)
    with open(cached, "rb") as handle:
        original = handle.read()
    assert reused[16:] == original[16:]
    assert reused[8:16] == fresh[8:16] == struct.pack("<II", agent_bundle.EPOCH, 6)
    # stale (the source changed after it was compiled): compiled again, not reused
    source.write_text("X = 22\n")
    os.utime(source, (2, 2))
    stale = agent_bundle._pyc(str(source), cached)
    assert stale[12:16] == struct.pack("<I", 7)
    assert agent_bundle._pyc(str(tmp_path / "mod.py"), None) == stale
    # a source that does not compile ships without bytecode (importing it fails anyway)
    source.write_text("def (:\n")
    assert agent_bundle._pyc(str(source), cached) is None


def test_the_closure_is_salt_and_what_it_needs_here():
    names = {d.metadata["Name"].lower() for d in agent_bundle.closure()}
    assert {"salt", "pyzmq", "msgpack", "pyyaml", "jinja2", "cryptography"} <= names
    # markers are evaluated for this Python: nothing Windows-only, nothing only the
    # controller itself needs
    assert not names & {"pywin32", "wmi", "pytest", "kubesalt", "passlib"}
    # what only salt-cloud, salt-api or the virtualenv module use, and what only they need
    assert not names & {"apache-libcloud", "cherrypy", "virtualenv", "distlib"}
    everything = {d.metadata["Name"].lower() for d in agent_bundle.closure(leave_out=())}
    assert {"apache-libcloud", "cherrypy", "virtualenv"} <= everything
    assert agent_bundle._environment_files(agent_bundle.closure("looseversion"))


def test_start_rebuilds_only_what_is_missing_or_stale(tmp_path, wheelhouse):
    store = tmp_path / "store"
    tag, arch = agent_bundle.python_tag(), agent_bundle.own_arch()
    assert agent_bundle.stale_reason(store, tag, arch) == "none built yet"
    entry = agent_bundle.build(store, wheelhouse=wheelhouse, log_file=tmp_path / "log")
    assert agent_bundle.stale_reason(store, tag, arch) is None
    path = store / "agent" / entry["file"]
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert "does not match its checksum" in agent_bundle.stale_reason(store, tag, arch)
    path.unlink()
    assert "is missing" in agent_bundle.stale_reason(store, tag, arch)
    path.write_bytes(data)
    manifest_file = store / "agent" / "manifest.json"
    for key, old in (("salt", "3007.1"), ("kubesalt", "0.0.1")):
        manifest = json.loads(manifest_file.read_text())
        manifest["bundles"][0][key] = old
        manifest_file.write_text(json.dumps(manifest))
        assert agent_bundle.stale_reason(store, tag, arch).startswith(f"{key} {old} -> ")
        manifest["bundles"][0][key] = entry[key]
        manifest_file.write_text(json.dumps(manifest))
    assert agent_bundle.stale_reason(store, tag, arch) is None
    assert agent_bundle.ensure(store, tmp_path / "log") == (entry, False)
    assert agent_bundle.summary(store) == [{
        "python": tag, "arch": arch, "salt": SALT, "size_mb": round(entry["size"] / 1e6, 1),
        "compiled": True, "file": entry["file"]}]


def _agent_bundle_command(root, *flags):
    from kubesalt.master import cli
    return cli.main(["agent-bundle", "--root", str(root), *flags])


def test_agent_bundle_prints_one_line_per_step_and_pip_writes_to_its_log(tmp_path, wheelhouse,
                                                                       capfd):
    root = tmp_path / "ctl"
    assert _agent_bundle_command(root, "--wheelhouse", str(wheelhouse)) == 0
    out, err = capfd.readouterr()
    log = root / "var/log/salt/agent-bundle.log"
    name = agent_bundle.bundle_name(agent_bundle.python_tag(), agent_bundle.own_arch())
    installing, packing = err.splitlines()
    assert installing == (
        f"kubesalt-controller: installing salt {SALT} and its dependencies for Python "
        f"{agent_bundle.own_python()} on {agent_bundle.own_arch()} with pip, from {wheelhouse} "
        f"(its output: {log})")
    assert re.fullmatch(rf"kubesalt-controller: packing \d+ files into {root}/var/lib/kubesalt/"
                        rf"files/kubesalt-artifacts/agent/{re.escape(name)}", packing)
    assert "Successfully installed fakedep-1.0 salt-" in log.read_text()
    assert "Successfully installed" not in out + err


def test_a_failed_pip_shows_the_end_of_its_log_and_where_it_is(tmp_path, wheelhouse, capfd):
    root = tmp_path / "ctl"
    log = root / "var/log/salt/agent-bundle.log"
    log.parent.mkdir(parents=True)
    log.write_text("an earlier build's last words\n")
    (wheelhouse / "fakedep-1.0-py3-none-any.whl").unlink()  # salt needs it: pip fails
    assert _agent_bundle_command(root, "--wheelhouse", str(wheelhouse)) == 1
    err = capfd.readouterr().err.splitlines()
    assert err[0].startswith(f"kubesalt-controller: installing salt {SALT}")
    assert err[1] == f"kubesalt-controller: pip failed (exit 1); see {log}"
    assert err[2] == f"  the last lines of {log}:"
    tail = err[3:]
    assert 0 < len(tail) <= 10 and all(line.startswith("    ") for line in tail)
    assert "ERROR: No matching distribution found for fakedep" in tail[-1]
    assert "an earlier build's last words" not in "\n".join(tail)


def test_a_format_1_manifest_is_dropped(tmp_path):
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "manifest.json").write_text(json.dumps({"format": 1, "bundles": [
        {"python": "cp311", "arch": "x86_64", "file": "old.tar.gz", "sha256": "0"}]}))
    assert agent_bundle.read_manifest(tmp_path) == {"format": 2, "bundles": []}
    assert agent_bundle.stale_reason(tmp_path, "cp311", "x86_64") == "none built yet"


def test_a_wheelhouse_without_salt_is_refused(tmp_path):
    with pytest.raises(agent_bundle.BundleError, match="has no salt wheel"):
        agent_bundle.build(tmp_path / "store", wheelhouse=tmp_path)


@pytest.mark.parametrize("python,arch,error", [
    ("3", None, "--python 3"), ("2.7", None, "--python 2.7"), ("3.11", "s390x", "--arch s390x"),
])
def test_targets_are_checked(python, arch, error):
    with pytest.raises(agent_bundle.BundleError, match=error):
        agent_bundle.normalize(python, arch)


def test_another_python_or_machine_takes_manylinux_wheels():
    assert agent_bundle.normalize("3.10", "arm64") == ("3.10", "cp310", "aarch64")
    platforms = agent_bundle.manylinux_platforms("aarch64", (2, 17))
    assert platforms[0] == "manylinux_2_17_aarch64" and platforms[-1] == "manylinux1_aarch64"
    assert "manylinux2014_aarch64" in platforms and "manylinux_2_18_aarch64" not in platforms


def test_the_info_member_comes_first_and_is_json(tmp_path):
    agent_bundle.pack({}, {"format": 2}, tmp_path / "b.tar.gz", False)
    with tarfile.open(tmp_path / "b.tar.gz", "r|gz") as tar:
        first = tar.next()
        assert first.name == agent.BUNDLE_INFO
        assert json.load(io.BytesIO(tar.extractfile(first).read())) == {"format": 2}
    digest = hashlib.sha256((tmp_path / "b.tar.gz").read_bytes()).hexdigest()
    agent_bundle.pack({}, {"format": 2}, tmp_path / "c.tar.gz", False)
    assert hashlib.sha256((tmp_path / "c.tar.gz").read_bytes()).hexdigest() == digest
