"""kubesalt's node agent: its own salt-minion under /opt/kubesalt, beside anything the customer has.

Everything kubesalt puts on a node lives under /opt/kubesalt plus one systemd unit, so removing it
(`conjurer -d`) is exact, and a customer's own salt-minion (/etc/salt, /var/cache/salt,
/var/run/salt, salt-minion.service) is never read or written. Salt field notes: a second minion
must differ in config dir, root_dir, sock_dir and utils_dirs, or it takes over the first one's
event sockets.

Standard library only: this runs from the conjurer zipapp on a bare node.
"""

import hashlib
import json
import os
import pkgutil
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time

HOME = "/opt/kubesalt"
SALT_ROOT = HOME + "/salt"
VENV = HOME + "/venv"
WHEELS = HOME + "/wheels"
CONF_DIR = SALT_ROOT + "/etc/salt"
PKI_DIR = SALT_ROOT + "/etc/salt/pki/minion"
LOG_FILE = SALT_ROOT + "/var/log/salt/minion"
PIDFILE = SALT_ROOT + "/var/run/salt-minion.pid"
ENROLLMENT = HOME + "/enrollment.json"
UNIT_NAME = "kubesalt-minion.service"
UNIT_PATH = "/etc/systemd/system/" + UNIT_NAME
TUNNEL_DIR = HOME + "/tunnel"
TUNNEL_CONFIG = HOME + "/tunnel.json"
TUNNEL_PIDFILE = SALT_ROOT + "/var/run/kubesalt-tunnel.pid"
TUNNEL_LOG = SALT_ROOT + "/var/log/salt/tunnel"
TUNNEL_UNIT_NAME = "kubesalt-tunnel.service"
TUNNEL_UNIT_PATH = "/etc/systemd/system/" + TUNNEL_UNIT_NAME
# The loopback ports the minion talks to when its connection goes through the tunnel.
TUNNEL_PORTS = {"publish": 45505, "return": 45506}
# What the tunnel runs: these modules of conjurer's own, copied beside the agent.
TUNNEL_MODULES = ("proxy_connect.py", "tunnel.py")
BUNDLE_STAMP = HOME + "/bundle.sha256"
# The first member of a node-agent bundle: what it holds and for which Python and machine.
BUNDLE_INFO = "kubesalt-agent.json"
BUNDLE_FORMAT = 2
BUNDLE_SITE = "site-packages/"

UNIT = """\
# kubesalt's node agent (a salt-minion under /opt/kubesalt); installed by conjurer.
# Independent of any salt-minion.service the node already has.
[Unit]
Description=kubesalt node agent (salt-minion)
After=network-online.target
Wants=network-online.target
{tunnel}
[Service]
Type=notify
NotifyAccess=all
ExecStart={venv}/bin/salt-minion -c {conf_dir}
KillMode=process
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


# Behind the agent gateway the minion has no way to the controller but the tunnel.
MINION_NEEDS_TUNNEL = "Requires={unit}\nAfter={unit}\n".format(unit=TUNNEL_UNIT_NAME)

TUNNEL_UNIT = """\
# kubesalt's node tunnel: carries kubesalt-minion's connections to the controller's agent
# gateway, through the site's proxy when there is one; installed by conjurer.
[Unit]
Description=kubesalt node tunnel (to the controller's agent gateway)
After=network-online.target
Wants=network-online.target
Before={minion_unit}

[Service]
WorkingDirectory={tunnel_dir}
ExecStart={venv}/bin/python -m kubesalt_tunnel.tunnel -c {config}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


class AgentError(RuntimeError):
    pass


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def minion_config(node_id, cluster, controller, acceptance_wait=2, tunnel_ports=None):
    """The minion configuration as YAML text (JSON is YAML, and needs no YAML library here).
    With `tunnel_ports` ({"publish": port, "return": port}) the minion talks to the node's
    tunnel on loopback, which carries it to the controller's agent gateway; the master key
    stays pinned (master_finger) either way."""
    master, ports = controller["address"], {"publish": controller["publish_port"],
                                            "return": controller["ret_port"]}
    if tunnel_ports:
        master, ports = "127.0.0.1", tunnel_ports
    config = {
        "id": node_id,
        "root_dir": SALT_ROOT,
        "master": master,
        "master_port": int(ports["return"]),
        "publish_port": int(ports["publish"]),
        "master_finger": controller["master_finger"],
        # Re-rooting does not cover utils_dirs; left alone it would load the customer's.
        "utils_dirs": [SALT_ROOT + "/var/cache/salt/minion/extmods/utils"],
        "grains": {"kubesalt": {"cluster": cluster, "node_id": node_id}},
        "acceptance_wait_time": acceptance_wait,
        "acceptance_wait_time_max": 5,
        "random_reauth_delay": 0,
        "log_level_logfile": "info",
    }
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


class Agent:
    """Install, configure, start and remove the agent. `root` re-roots every path (tests);
    `run` runs a command list and returns CompletedProcess."""

    def __init__(self, root="/", run=None, python="python3"):
        self.root = root
        self.python = python
        self._run = run or _run
        self._interpreter = None

    def path(self, absolute):
        return os.path.join(self.root, absolute.lstrip("/"))

    def run(self, argv, **kwargs):
        proc = self._run(argv, **kwargs)
        if proc.returncode != 0:
            output = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
            raise AgentError(f"{' '.join(argv[:3])} failed (exit {proc.returncode}): "
                             + " | ".join(output))
        return proc

    # ---- state of the node -------------------------------------------------------------

    def enrollment(self):
        try:
            with open(self.path(ENROLLMENT), encoding="utf-8") as handle:
                return json.load(handle)
        except (FileNotFoundError, ValueError):
            return None

    def installed(self):
        return os.path.exists(self.path(HOME))

    # ---- install ---------------------------------------------------------------------------

    def install_software(self, bundle_path, sha256):
        """Install the agent software from a node-agent bundle (format 2, see
        kubesalt.master.agent.bundle): Salt and its dependencies already installed and
        byte-compiled, unpacked into a venv of our own. Nothing is built or resolved here.
        Skipped when the same bundle is already installed; an earlier install stays in place
        until the new one is complete."""
        stamp = self.path(BUNDLE_STAMP)
        if os.path.exists(stamp) and _read(stamp).strip() == sha256 \
                and os.path.exists(self.path(VENV + "/bin/salt-minion")):
            return False
        if sha256_file(bundle_path) != sha256:
            raise AgentError(f"{bundle_path} does not match its checksum; not installing it")
        venv = self.path(VENV)
        staged, retired = venv + ".new", venv + ".old"
        for leftover in (staged, retired):
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            info = unpack_bundle(bundle_path, staged, self._check_target)
            self._make_venv(staged)
            self._write_launchers(staged, info["scripts"])
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        if os.path.exists(venv):
            os.rename(venv, retired)
        os.rename(staged, venv)
        shutil.rmtree(retired, ignore_errors=True)
        # what a format-1 install (wheels for pip) left
        shutil.rmtree(self.path(WHEELS), ignore_errors=True)
        _write(stamp, sha256 + "\n", 0o644)
        return True

    def interpreter(self):
        """(real path, version "X.Y.Z") of the Python the agent runs on."""
        if self._interpreter is None:
            real = os.path.realpath(shutil.which(self.python) or self.python)
            if real == os.path.realpath(sys.executable):
                version = "%d.%d.%d" % sys.version_info[:3]
            else:
                version = self.run([real, "-c", "import sys; print('%d.%d.%d' % "
                                                "sys.version_info[:3])"]).stdout.strip()
            self._interpreter = (real, version)
        return self._interpreter

    def _check_target(self, info):
        """The bundle must be for this node's Python and architecture."""
        _, version = self.interpreter()
        tag = "cp" + "".join(version.split(".")[:2])
        if info.get("python") != tag or info.get("arch") != platform.machine():
            raise AgentError(f"the agent bundle is for {info.get('python')}/{info.get('arch')}, "
                             f"this node runs {tag}/{platform.machine()}")

    def _make_venv(self, directory):
        """What `python3 -m venv --without-pip --symlinks` makes, written directly. The
        interpreter itself reads pyvenv.cfg (sys.prefix, site-packages, no system packages),
        so this works wherever python3 does: it needs neither ensurepip (Debian and Ubuntu
        ship it apart, in python3-venv, which minimal images lack) nor the venv module, and
        starts no process."""
        real, version = self.interpreter()
        bindir = os.path.join(directory, "bin")
        os.makedirs(bindir, exist_ok=True)
        os.symlink(real, os.path.join(bindir, "python"))
        major_minor = ".".join(version.split(".")[:2])
        for alias in ("python3", "python" + major_minor):
            os.symlink("python", os.path.join(bindir, alias))
        if not os.path.lexists(os.path.join(directory, "lib64")):
            os.symlink("lib", os.path.join(directory, "lib64"))
        _write(os.path.join(directory, "pyvenv.cfg"),
               f"home = {os.path.dirname(real)}\ninclude-system-site-packages = false\n"
               f"version = {version}\n", 0o644)

    def _write_launchers(self, directory, scripts):
        """Console scripts made on a build machine name its Python; these name the venv's.
        -I: nothing from the node's environment (PYTHONPATH, a user site-packages) reaches the
        agent's imports."""
        python = self.path(VENV + "/bin/python")
        for name, target in sorted(scripts.items()):
            match = re.fullmatch(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)", target)
            if not re.fullmatch(r"[\w.-]+", name) or not match:
                raise AgentError(f"the agent bundle names a bad script: {name} = {target}")
            module, function = match.groups()
            _write(os.path.join(directory, "bin", name),
                   f"#!{python} -I\n# kubesalt node agent: {name}; written by conjurer\n"
                   f"import sys\nfrom {module} import {function}\n"
                   f"if __name__ == \"__main__\":\n    sys.exit({function}())\n", 0o755)

    def held_public_key(self):
        """The minion public key an earlier run made, or None on a fresh node: a rerun enrolls
        with that same key, which is how the controller tells it from another minion under
        this id."""
        try:
            with open(self.path(PKI_DIR + "/minion.pub"), encoding="ascii") as handle:
                return handle.read()
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def generate_keys(self):
        """The minion's key pair, made before first start so enrollment can vouch for it."""
        pki = self.path(PKI_DIR)
        if not os.path.exists(os.path.join(pki, "minion.pem")):
            os.makedirs(pki, mode=0o700, exist_ok=True)
            self.run([self.path(VENV + "/bin/python"), "-c",
                      "import sys, salt.crypt; salt.crypt.write_keys(sys.argv[1], 'minion', "
                      "2048)", pki])
        with open(os.path.join(pki, "minion.pub"), encoding="ascii") as handle:
            return handle.read()

    def write_enrollment(self, node_id, cluster, controller, serial):
        record = {"node_id": node_id, "cluster": cluster, "serial": serial,
                  "controller": controller["address"], "enrolled_at": int(time.time())}
        _write(self.path(ENROLLMENT), json.dumps(record, indent=2, sort_keys=True) + "\n",
               0o600)

    def write_ca(self, ca_cert_pem):
        _write(self.path(SALT_ROOT + "/etc/salt/pki/kubesalt-ca.crt"), ca_cert_pem, 0o644)

    def configure(self, node_id, cluster, controller, tunnel_config=None):
        """`tunnel_config` (tunnel.tunnel_config's text) when the minion's connection goes
        through the agent gateway: the tunnel's code and settings are written beside the
        agent and the minion talks to it on loopback."""
        config_dir = self.path(CONF_DIR + "/minion.d")
        os.makedirs(config_dir, exist_ok=True)
        _write(self.path(CONF_DIR + "/minion"),
               "# kubesalt node agent; settings are in minion.d/kubesalt.conf\n", 0o644)
        self._configure_tunnel(tunnel_config)
        _write(os.path.join(config_dir, "kubesalt.conf"),
               minion_config(node_id, cluster, controller,
                             tunnel_ports=TUNNEL_PORTS if tunnel_config else None), 0o600)
        for directory in ("var/log/salt", "var/run", "var/cache/salt/minion/extmods/utils"):
            os.makedirs(self.path(SALT_ROOT + "/" + directory), exist_ok=True)

    def _configure_tunnel(self, tunnel_config):
        if not tunnel_config:
            shutil.rmtree(self.path(TUNNEL_DIR), ignore_errors=True)
            if os.path.exists(self.path(TUNNEL_CONFIG)):
                os.remove(self.path(TUNNEL_CONFIG))
            return
        package = self.path(TUNNEL_DIR + "/kubesalt_tunnel")
        os.makedirs(package, exist_ok=True)
        _write(os.path.join(package, "__init__.py"), "", 0o644)
        for module in TUNNEL_MODULES:
            # pkgutil, not open(): conjurer runs from a zipapp.
            source = pkgutil.get_data(__package__, module).decode("utf-8")
            _write(os.path.join(package, module), source, 0o644)
        # The proxy's password may be in it.
        _write(self.path(TUNNEL_CONFIG), tunnel_config, 0o600)

    def tunnelled(self):
        return os.path.exists(self.path(TUNNEL_CONFIG))

    def systemd_available(self):
        return os.path.isdir(self.path("/run/systemd/system")) and shutil.which("systemctl")

    def start(self, timeout=60):
        tunnelled = self.tunnelled()
        if self.systemd_available():
            self._unit_files(tunnelled)
            self.run(["systemctl", "daemon-reload"])
            if tunnelled:
                self.run(["systemctl", "enable", TUNNEL_UNIT_NAME])
                self.run(["systemctl", "restart", TUNNEL_UNIT_NAME])
            self.run(["systemctl", "enable", UNIT_NAME])
            self.run(["systemctl", "restart", UNIT_NAME])
            self._wait(lambda: self._run(["systemctl", "is-active", "--quiet", UNIT_NAME])
                       .returncode == 0, timeout, "kubesalt-minion to be active")
        else:
            self.stop_daemon()
            if tunnelled:
                self._start_tunnel_daemon()
            self.run([self.path(VENV + "/bin/salt-minion"), "-c", self.path(CONF_DIR), "-d"])
            self._wait(lambda: self._pid() is not None, timeout, "the salt-minion pidfile")

    def _unit_files(self, tunnelled):
        _write(self.path(UNIT_PATH), UNIT.format(
            venv=VENV, conf_dir=CONF_DIR, tunnel=MINION_NEEDS_TUNNEL if tunnelled else ""),
            0o644)
        if tunnelled:
            _write(self.path(TUNNEL_UNIT_PATH), TUNNEL_UNIT.format(
                minion_unit=UNIT_NAME, tunnel_dir=TUNNEL_DIR, venv=VENV,
                config=TUNNEL_CONFIG), 0o644)
        elif os.path.exists(self.path(TUNNEL_UNIT_PATH)):
            self._run(["systemctl", "disable", "--now", TUNNEL_UNIT_NAME])
            os.remove(self.path(TUNNEL_UNIT_PATH))

    def _start_tunnel_daemon(self):
        """Without systemd (containers, tests): the tunnel as a process of its own."""
        self._stop_tunnel_daemon()
        os.makedirs(os.path.dirname(self.path(TUNNEL_LOG)), exist_ok=True)
        with open(self.path(TUNNEL_LOG), "ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own venv's python
                [self.path(VENV + "/bin/python"), "-m", "kubesalt_tunnel.tunnel", "-c",
                 self.path(TUNNEL_CONFIG)], cwd=self.path(TUNNEL_DIR),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        _write(self.path(TUNNEL_PIDFILE), "%d\n" % process.pid, 0o644)

    def _stop_tunnel_daemon(self):
        try:
            pid = int(open(self.path(TUNNEL_PIDFILE)).read().strip())
            os.kill(pid, 15)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass

    def _pid(self):
        try:
            pid = int(open(self.path(PIDFILE)).read().strip())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None

    @staticmethod
    def _wait(predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AgentError(f"timed out after {timeout}s waiting for {what}; see {LOG_FILE}")

    # ---- removal -------------------------------------------------------------------------

    def stop_daemon(self):
        pid = self._pid()
        if pid is not None:
            os.kill(pid, 15)
            self._wait(lambda: self._pid() is None, 30, "the old salt-minion to stop")

    def remove(self):
        """Remove kubesalt's agent, units and files; nothing else."""
        removed = []
        if os.path.exists(self.path(TUNNEL_UNIT_PATH)):
            if self.systemd_available():
                self._run(["systemctl", "disable", "--now", TUNNEL_UNIT_NAME])
            os.remove(self.path(TUNNEL_UNIT_PATH))
            removed.append(TUNNEL_UNIT_PATH)
        else:
            self._stop_tunnel_daemon()
        if os.path.exists(self.path(UNIT_PATH)):
            if self.systemd_available():
                self._run(["systemctl", "disable", "--now", UNIT_NAME])
            os.remove(self.path(UNIT_PATH))
            if self.systemd_available():
                self._run(["systemctl", "daemon-reload"])
            removed.append(UNIT_PATH)
        else:
            self.stop_daemon()
        if os.path.exists(self.path(HOME)):
            shutil.rmtree(self.path(HOME))
            removed.append(HOME)
        return removed


def unpack_bundle(bundle_path, directory, check=None):
    """Unpack a node-agent bundle into the venv `directory` (created; must not exist) and
    return its BUNDLE_INFO; `check(info)` may refuse it before anything is written. Refuses,
    with AgentError, anything but regular files below site-packages/: absolute names, "..",
    links, devices, a name twice. Modes are 0644 or 0755 whatever the archive says; owners
    are not taken from it."""
    try:
        with tarfile.open(bundle_path, "r|gz") as tar:
            first = tar.next()
            if first is None or first.name != BUNDLE_INFO or not first.isreg():
                raise AgentError("the agent bundle is in an older format (wheels for pip on "
                                 "the node); rebuild it on the controller: restart it, or run "
                                 "kubesalt-controller agent-bundle")
            info = json.loads(tar.extractfile(first).read().decode("utf-8"))
            if info.get("format") != BUNDLE_FORMAT:
                raise AgentError(f"the agent bundle has format {info.get('format')}; this "
                                 f"conjurer installs format {BUNDLE_FORMAT}")
            if check:
                check(info)
            tag = info["python"]
            site = os.path.join(directory, "lib", "python%s.%s" % (tag[2], tag[3:]),
                                "site-packages")
            os.makedirs(site, mode=0o755)
            made = {site}
            member = tar.next()
            while member is not None:
                _unpack_member(tar, member, site, made)
                member = tar.next()
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError) as exc:
        raise AgentError(f"the agent bundle cannot be unpacked: {exc}") from None
    return info


def _unpack_member(tar, member, site, made):
    """One file of the bundle; `made` holds the directories made so far (thousands of files
    share a few hundred directories, and on a small node each syscall counts)."""
    name = member.name
    parts = name[len(BUNDLE_SITE):].split("/") if name.startswith(BUNDLE_SITE) else []
    if not member.isreg():
        raise AgentError(f"the agent bundle holds {name!r}, which is not a regular file; "
                         "refusing it")
    if not parts or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise AgentError(f"the agent bundle holds {name!r}, outside site-packages/; "
                         "refusing it")
    parent = os.path.join(site, *parts[:-1])
    if parent not in made:
        os.makedirs(parent, mode=0o755, exist_ok=True)
        made.add(parent)
    target = os.path.join(parent, parts[-1])
    # O_EXCL|O_NOFOLLOW: a name twice, or anything already there, is an error, never followed
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                 0o755 if member.mode & 0o111 else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(tar.extractfile(member).read())
    # the .pyc files record their source's mtime: restore it, or they are stale
    os.utime(target, (member.mtime, member.mtime))


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _write(path, text, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _run(argv, **kwargs):
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(argv, capture_output=True, universal_newlines=True, check=False,
                          **kwargs)
