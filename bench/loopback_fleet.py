"""Simulated nodes for the controller benchmark: each a real salt-minion process on loopback with
its own id, directories and key pair, enrolled through the controller's endpoint by conjurer's
own code (kubesalt.minion_bootstrap.cli: the installer check, then the signed enrollment with
proof of possession of the installer key) and configured as conjurer configures its agent.

Differences from a node, each to fit hundreds on one machine: the agent software is this venv's
Salt (no bundle download); paths are re-rooted under a per-node directory (root_dir, and
utils_dirs, which re-rooting does not cover); `multiprocessing: False` runs each job in a
thread of the minion instead of a forked process; `--disable-keepalive` leaves out the parent
process that only restarts the minion when it dies. Each minion runs in a session of its own,
so stopping it also ends whatever it started.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import salt.crypt

from kubesalt.minion_bootstrap import agent, cli, credentials

BIN = Path(sys.executable).parent
STOP_GRACE = 30


class FleetError(RuntimeError):
    pass


class LoopbackFleet:
    def __init__(self, base, cluster, creds_text, passphrase):
        self.base = Path(base)
        self.cluster = cluster
        self.creds = credentials.open_credentials(creds_text, passphrase, cluster)
        self.minions = {}  # node id -> Popen of its salt-minion
        self.started_at = {}  # node id -> monotonic time its salt-minion was started

    def node_id(self, number):
        """An id of the shape conjurer derives (node-<machine>-<address>-<cluster>)."""
        return f"node-{number:08x}-127-0-0-1-{self.cluster}"

    def root(self, node_id):
        # Short: Salt's IPC socket paths under it must stay within the 107-byte Unix limit.
        return self.base / node_id.split("-")[1]

    def pki_dir(self, node_id):
        return self.root(node_id) / "etc" / "salt" / "pki" / "minion"

    def make_keys(self, node_ids):
        """Each node's minion key pair, made before enrollment as conjurer does, with the same
        Salt call (in this process: a Python per key would cost more than the key)."""
        for node_id in node_ids:
            pki = self.pki_dir(node_id)
            pki.mkdir(parents=True, mode=0o700, exist_ok=True)
            salt.crypt.write_keys(str(pki), "minion", 2048)

    def enroll(self, node_id, facts):
        """conjurer's exchange with the endpoint for one node: may it enroll, then the signed
        enrollment. Returns the status the controller answered (APPROVED with auto-approve);
        a refusal raises cli.EnrollError, no answer cli.ControllerError."""
        minion_pub = (self.pki_dir(node_id) / "minion.pub").read_text()
        cli.check_installer(self.creds, node_id)
        return cli.enroll(self.creds, node_id, minion_pub, facts)["status"]

    def enroll_all(self, node_ids, facts, concurrency):
        """Enroll `node_ids`, `concurrency` at a time; {node id: (status or error, seconds)}."""
        def one(node_id):
            started = time.monotonic()
            try:
                status = self.enroll(node_id, facts)
            except (cli.EnrollError, cli.ControllerError) as exc:
                status = f"refused: {exc}"
            return node_id, (status, time.monotonic() - started)

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return dict(pool.map(one, node_ids))

    def configure(self, node_id):
        """The agent's configuration as conjurer writes it (agent.minion_config), re-rooted."""
        root = self.root(node_id)
        config = json.loads(agent.minion_config(node_id, self.cluster, self.creds.controller,
                                                acceptance_wait=1))
        config["root_dir"] = str(root)
        config["utils_dirs"] = [str(root / "var/cache/salt/minion/extmods/utils")]
        config["multiprocessing"] = False
        conf_dir = root / "etc" / "salt"
        (conf_dir / "minion.d").mkdir(parents=True, exist_ok=True)
        (conf_dir / "minion").write_text("# settings are in minion.d/kubesalt.conf\n")
        conf = conf_dir / "minion.d" / "kubesalt.conf"
        conf.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        conf.chmod(0o600)
        for directory in ("var/log/salt", "var/run", "var/cache/salt/minion/extmods/utils"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        return conf_dir

    def start(self, node_ids):
        for node_id in node_ids:
            conf_dir = self.configure(node_id)
            self.started_at[node_id] = time.monotonic()
            self.minions[node_id] = subprocess.Popen(
                [str(BIN / "salt-minion"), "-c", str(conf_dir), "--disable-keepalive",
                 "--log-level", "quiet"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)

    def exited(self):
        """{node id: exit code} of the minions that are no longer running."""
        return {node_id: proc.returncode for node_id, proc in self.minions.items()
                if proc.poll() is not None}

    def pids(self):
        return [proc.pid for proc in self.minions.values() if proc.poll() is None]

    def stop(self):
        """End every minion and what it started (its session): SIGTERM, then SIGKILL for what
        is left after STOP_GRACE seconds. Raises FleetError if any process survives."""
        running = {node_id: proc for node_id, proc in self.minions.items()
                   if proc.poll() is None}
        for proc in running.values():
            _signal_session(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in running.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in running.values():
            # the session too: a job's child outlives a minion that ended on SIGTERM
            _signal_session(proc.pid, signal.SIGKILL)
            proc.wait()
        # processes of a killed session are gone once init has reaped them
        deadline = time.monotonic() + 5
        left = [proc.pid for proc in running.values()]
        while left and time.monotonic() < deadline:
            left = [pid for pid in left if _session_alive(pid)]
            time.sleep(0.05)
        if left:
            raise FleetError(f"minion sessions still running after SIGKILL: {left}")


def _signal_session(sid, signum):
    """Signal the process group the minion leads (its session: start_new_session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signum)


def _session_alive(sid):
    try:
        os.killpg(sid, 0)
    except ProcessLookupError:
        return False
    return True
