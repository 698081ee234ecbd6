"""The Salt high-availability mode a fleet controller builds on, measured with salt 3008.3 and
ZeroMQ (docs/ARCHITECTURE.md, "Two masters"): two salt-masters sharing one master key, and a
minion configured with both (hot multi-master: it keeps a connection to each). Each master
reaches the minion; a master killed outright (SIGKILL) stops nothing on the other, and once
restarted it reaches the minion again by itself."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.waiting import wait_for

from .controller import BIN, free_ports

pytestmark = pytest.mark.integration


def _write_keys(directory, name):
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BIN / "python"), "-c", "import sys, salt.crypt; "
                    "salt.crypt.write_keys(sys.argv[1], sys.argv[2], 2048)", str(directory),
                    name], check=True)


class Master:
    def __init__(self, root, key_from=None):
        self.root = root
        self.conf = root / "etc" / "salt"
        self.publish_port, self.ret_port = free_ports(2)
        pki = self.conf / "pki" / "master"
        if key_from is None:
            _write_keys(pki, "master")
        else:
            pki.mkdir(parents=True)
            for name in ("master.pem", "master.pub"):
                shutil.copy2(key_from.conf / "pki" / "master" / name, pki / name)
        (self.conf / "master").write_text(json.dumps({
            "root_dir": str(root), "interface": "127.0.0.1", "user": "root",
            "publish_port": self.publish_port, "ret_port": self.ret_port,
            "worker_threads": 2, "auto_accept": False, "log_level": "info"}))

    def accept(self, minion_id, pub):
        (self.conf / "pki" / "master" / "minions").mkdir(exist_ok=True)
        (self.conf / "pki" / "master" / "minions" / minion_id).write_text(pub)

    def start(self):
        subprocess.run([str(BIN / "salt-master"), "-c", str(self.conf), "-d"], check=True)

    def kill(self):
        """SIGKILL to the master and every process it started: a machine that lost power."""
        pid = int((self.root / "var" / "run" / "salt-master.pid").read_text())
        tree = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        for proc in tree:
            proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(tree, timeout=30)

    def stop(self):
        try:
            self.kill()
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
            pass

    def pings(self, minion_id):
        proc = subprocess.run([str(BIN / "salt"), "-c", str(self.conf), "--out=json", "-t", "5",
                               minion_id, "test.ping"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        try:
            return json.loads(proc.stdout or "{}").get(minion_id) is True
        except ValueError:
            return False


@pytest.fixture
def two_masters_one_minion():
    root = Path(tempfile.mkdtemp(prefix="ksmm-"))  # short: Salt's socket paths
    first = Master(root / "m1")
    second = Master(root / "m2", key_from=first)
    minion_conf = root / "n1" / "etc" / "salt"
    _write_keys(minion_conf / "pki" / "minion", "minion")
    pub = (minion_conf / "pki" / "minion" / "minion.pub").read_text()
    for master in (first, second):
        master.accept("n1", pub)
    (minion_conf / "minion").write_text(json.dumps({
        "id": "n1", "root_dir": str(root / "n1"), "multiprocessing": False,
        "master": [f"127.0.0.1:{m.ret_port}" for m in (first, second)],
        "master_tries": -1, "acceptance_wait_time": 1, "log_level": "info"}))
    try:
        first.start()
        second.start()
        subprocess.run([str(BIN / "salt-minion"), "-c", str(minion_conf), "-d"], check=True)
        yield first, second
    finally:
        pidfile = root / "n1" / "var" / "run" / "salt-minion.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        for master in (first, second):
            master.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_each_master_reaches_the_minion_and_a_killed_one_stops_nothing(two_masters_one_minion):
    first, second = two_masters_one_minion
    for master in (first, second):
        wait_for(lambda master=master: master.pings("n1"), 90, "the minion to answer a master")
    first.kill()
    assert second.pings("n1"), "the surviving master lost the minion"
    first.start()
    wait_for(lambda: first.pings("n1"), 90, "the restarted master to reach the minion again")
    assert second.pings("n1")
