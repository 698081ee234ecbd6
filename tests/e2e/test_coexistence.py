"""conjurer -m on a node that already runs a customer's salt-minion, connected to the
customer's own salt-master: both minions answer their own masters, and `-m -d` leaves the
customer's exactly as it was."""

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.controller import BIN, free_ports
from tests.waiting import wait_for

pytestmark = pytest.mark.lab
DEST = "/root/kubesalt"
CUSTOMER_ID = "customer-minion"
CUSTOMER_FILES = ("/etc/salt", "/etc/systemd/system/salt-minion.service")


class CustomerMaster:
    """A plain salt-master on the lab bridge, as a customer would run one (auto-accepting)."""

    def __init__(self, interface):
        self.interface = interface
        self.root = Path(tempfile.mkdtemp(prefix="ksx-"))
        self.publish_port, self.ret_port = free_ports(2, interface)
        self.conf_dir = self.root / "etc/salt"
        self.conf_dir.mkdir(parents=True)
        (self.conf_dir / "master").write_text(
            f"root_dir: {self.root}\ninterface: {interface}\npublish_port: {self.publish_port}\n"
            f"ret_port: {self.ret_port}\nauto_accept: True\nuser: root\n")

    def start(self):
        subprocess.run([str(BIN / "salt-master"), "-c", str(self.conf_dir), "-d"], check=True,
                       timeout=60)

    def ping(self, target):
        proc = subprocess.run([str(BIN / "salt"), "-c", str(self.conf_dir), "--out=json",
                               "--static", "-t", "10", target, "test.ping"],
                              capture_output=True, text=True, timeout=60)
        return f'"{target}": true' in proc.stdout

    def stop(self):
        pidfile = self.root / "var/run/salt-master.pid"
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def customer_master(lab):
    master = CustomerMaster(lab.bridge_address)
    master.start()
    yield master
    master.stop()


@pytest.fixture
def node(lab):
    node = lab.nodes[2]
    yield node
    lab.renew([node])


def install_customer_minion(node, master, bundle):
    node.push(bundle, "/root/agent.tar.gz")
    # kubesalt's bundle holds an installed Salt (site-packages/): the customer's venv uses it
    node.sh("set -e; mkdir -p /root/agent && tar -xzf /root/agent.tar.gz -C /root/agent; "
            "python3 -m venv --without-pip /opt/customer-salt; "
            "echo /root/agent/site-packages > "
            "$(echo /opt/customer-salt/lib/python3*/site-packages)/agent.pth", check=True)
    node.write("/opt/customer-salt/bin/salt-minion", "#!/opt/customer-salt/bin/python\n"
               "import sys\nfrom salt.scripts import salt_minion\nsys.exit(salt_minion())\n",
               mode=0o755)
    node.write("/etc/salt/minion", f"id: {CUSTOMER_ID}\nmaster: {master.interface}\n"
               f"master_port: {master.ret_port}\npublish_port: {master.publish_port}\n"
               "acceptance_wait_time: 2\n")
    node.write("/etc/systemd/system/salt-minion.service",
               "[Unit]\nDescription=The customer's salt-minion\n\n[Service]\n"
               "ExecStart=/opt/customer-salt/bin/salt-minion\nKillMode=process\n\n"
               "[Install]\nWantedBy=multi-user.target\n")
    node.systemctl("enable", "--now", "salt-minion", check=True)


def fingerprint(node):
    """sha256 of every customer file (config, keys, unit)."""
    listing = node.run(["find", *CUSTOMER_FILES, "-type", "f"], check=True).stdout.split()
    return {path: hashlib.sha256(node.run(["cat", path], check=True).stdout.encode())
            .hexdigest() for path in sorted(listing)}


def main_pid(node, unit):
    return node.run(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip()


def test_beside_a_customer_minion(lab, lab_controller, customer_master, node, tmp_path):
    bundle = next((lab_controller.root / "var/lib/kubesalt/files/kubesalt-artifacts/agent")
                  .glob("kubesalt-agent-*.tar.gz"))
    install_customer_minion(node, customer_master, bundle)
    wait_for(lambda: customer_master.ping(CUSTOMER_ID), 120, "the customer's minion to answer")
    before, customer_pid = fingerprint(node), main_pid(node, "salt-minion")
    assert before and customer_pid != "0"

    lab_controller.run_ok("cluster.create", "coex", "os=debian-12", "auto_approve=True")
    lab_controller.run_ok("cluster.installer", "coex", f"dest={tmp_path}")
    node.push(tmp_path, DEST)
    flags = ["-edge-name=coex", f"-passphrase-file={DEST}/coex-passphrase.txt",
             f"-creds-file={DEST}/coex.pem"]
    # without -m, conjurer refuses to touch a node with a customer minion
    refused = node.run(["python3", f"{DEST}/conjurer", *flags], timeout=300)
    assert refused.returncode != 0
    assert "-m" in refused.stdout + refused.stderr
    assert not node.exists("/opt/kubesalt")

    installed = node.run(["python3", f"{DEST}/conjurer", *flags, "-m"], timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    rows = wait_for(lambda: [r for r in lab_controller.run_ok("node.list", "cluster=coex")
                             if r["status"] == "APPROVED"], 60, "our agent approved")
    ours = rows[0]["id"]

    def ours_answers():
        proc = subprocess.run([str(BIN / "salt"), "-c", str(lab_controller.conf_dir),
                               "--out=json", "--static", "-t", "10", ours, "test.ping"],
                              capture_output=True, text=True, timeout=60)
        return f'"{ours}": true' in proc.stdout

    wait_for(ours_answers, 60, "kubesalt's minion to answer the controller")
    assert customer_master.ping(CUSTOMER_ID), "the customer's minion still answers its master"
    assert not customer_master.ping(ours), "the customer's master does not reach our minion"
    assert fingerprint(node) == before
    assert main_pid(node, "salt-minion") == customer_pid

    removed = node.run(["python3", f"{DEST}/conjurer", "-m", "-d"], timeout=300)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert customer_master.ping(CUSTOMER_ID)
    assert fingerprint(node) == before
    assert main_pid(node, "salt-minion") == customer_pid
    leftovers = node.run(["sh", "-c", "ls -d /opt/kubesalt /etc/systemd/system/kubesalt-* "
                                      "/etc/kubesalt 2>/dev/null; systemctl list-units "
                                      "--all --plain --no-legend 'kubesalt*'"]).stdout.strip()
    assert leftovers == ""
