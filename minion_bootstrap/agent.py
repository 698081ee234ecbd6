"""kubesalt's node agent: its own salt-minion under /opt/kubesalt, beside anything the customer has.

Everything kubesalt puts on a node lives under /opt/kubesalt plus one systemd unit, so removing it
(`conjurer -d`) is exact, and a customer's own salt-minion (/etc/salt, /var/cache/salt,
/var/run/salt, salt-minion.service) is never read or written. Salt field notes: a second minion
must differ in config dir, root_dir, sock_dir and utils_dirs, or it takes over the first one's
event sockets (see shared SALT-NOTES).

Standard library only: this runs from the conjurer zipapp on a bare node.
"""

import hashlib
import json
import os
import shutil
import subprocess
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
BUNDLE_STAMP = HOME + "/bundle.sha256"

UNIT = """\
# kubesalt's node agent (a salt-minion under /opt/kubesalt); installed by conjurer.
# Independent of any salt-minion.service the node already has.
[Unit]
Description=kubesalt node agent (salt-minion)
After=network-online.target
Wants=network-online.target

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


class AgentError(RuntimeError):
    pass


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def minion_config(node_id, cluster, controller, acceptance_wait=2):
    """The minion configuration as YAML text (JSON is YAML, and needs no YAML library here)."""
    config = {
        "id": node_id,
        "root_dir": SALT_ROOT,
        "master": controller["address"],
        "master_port": int(controller["ret_port"]),
        "publish_port": int(controller["publish_port"]),
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
        """Unpack the wheelhouse and install Salt into our own venv; skipped when the same
        bundle is already installed."""
        stamp = self.path(BUNDLE_STAMP)
        if os.path.exists(stamp) and open(stamp).read().strip() == sha256 \
                and os.path.exists(self.path(VENV + "/bin/salt-minion")):
            return False
        if sha256_file(bundle_path) != sha256:
            raise AgentError(f"{bundle_path} does not match its checksum; not installing it")
        wheels = self.path(WHEELS)
        shutil.rmtree(wheels, ignore_errors=True)
        os.makedirs(wheels, mode=0o755)
        with tarfile.open(bundle_path, "r:gz") as tar:
            for member in tar.getmembers():
                name = os.path.basename(member.name)
                if not member.isfile() or not name.endswith(".whl"):
                    continue
                source = tar.extractfile(member)
                with open(os.path.join(wheels, name), "wb") as out:
                    shutil.copyfileobj(source, out)
        salt_wheels = [w for w in os.listdir(wheels) if w.lower().startswith("salt-")]
        if not salt_wheels:
            raise AgentError("the agent bundle has no salt wheel")
        self.run([self.python, "-m", "venv", self.path(VENV)])
        # --no-compile: byte-compiling all of Salt takes most of the install on a small
        # node; the minion compiles only the modules it imports, once, on first start.
        self.run([self.path(VENV + "/bin/python"), "-m", "pip", "install", "--quiet",
                  "--no-compile", "--no-index", "--find-links", wheels,
                  os.path.join(wheels, salt_wheels[0])])
        with open(stamp, "w") as handle:
            handle.write(sha256 + "\n")
        return True

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

    def configure(self, node_id, cluster, controller):
        config_dir = self.path(CONF_DIR + "/minion.d")
        os.makedirs(config_dir, exist_ok=True)
        _write(self.path(CONF_DIR + "/minion"),
               "# kubesalt node agent; settings are in minion.d/kubesalt.conf\n", 0o644)
        _write(os.path.join(config_dir, "kubesalt.conf"),
               minion_config(node_id, cluster, controller), 0o600)
        for directory in ("var/log/salt", "var/run", "var/cache/salt/minion/extmods/utils"):
            os.makedirs(self.path(SALT_ROOT + "/" + directory), exist_ok=True)

    def systemd_available(self):
        return os.path.isdir(self.path("/run/systemd/system")) and shutil.which("systemctl")

    def start(self, timeout=60):
        if self.systemd_available():
            _write(self.path(UNIT_PATH), UNIT.format(venv=VENV, conf_dir=CONF_DIR), 0o644)
            self.run(["systemctl", "daemon-reload"])
            self.run(["systemctl", "enable", UNIT_NAME])
            self.run(["systemctl", "restart", UNIT_NAME])
            self._wait(lambda: self._run(["systemctl", "is-active", "--quiet", UNIT_NAME])
                       .returncode == 0, timeout, "kubesalt-minion to be active")
        else:
            self.stop_daemon()
            self.run([self.path(VENV + "/bin/salt-minion"), "-c", self.path(CONF_DIR), "-d"])
            self._wait(lambda: self._pid() is not None, timeout, "the salt-minion pidfile")

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
        """Remove kubesalt's agent, unit and files; nothing else."""
        removed = []
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
