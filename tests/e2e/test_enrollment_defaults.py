"""A first enrollment out of the box: a controller initialised with nothing but its addresses
(no --ntp-server) and started, nothing else (no manual agent-bundle step), a lab node that runs
conjurer. The node's time is checked against the
controller's clock, a node whose clock is 10 minutes off is refused with the skew named, and a
controller that lost its node-agent software says how to build it again."""

import re
import shutil
import tempfile

import pytest

from kubesalt.master.layout import Layout
from kubesalt.minion_bootstrap import credentials
from tests.integration.controller import Controller
from tests.waiting import wait_for

pytestmark = pytest.mark.lab

DEST = "/root/kubesalt"
CLUSTER = "dflt"


@pytest.fixture(scope="module")
def default_controller(lab):
    """A controller as an operator first starts one: init without --ntp-server, start."""
    root = tempfile.mkdtemp(prefix="ksld-")
    ctl = Controller(root, interface=lab.bridge_address)
    ctl.init()
    assert ctl.start(build_bundle=True)["agent_bundle"].endswith(" built")
    yield ctl
    ctl.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def default_installer(default_controller, tmp_path_factory):
    default_controller.run_ok("cluster.create", CLUSTER, "os=debian-12")
    dest = tmp_path_factory.mktemp(CLUSTER)
    default_controller.run_ok("cluster.installer", CLUSTER, f"dest={dest}")
    return dest


@pytest.fixture
def node(lab, default_installer):
    """A lab node with the three files pushed, given back as the lab made it."""
    node = lab.nodes[1]
    node.push(default_installer, DEST)
    yield node
    node.run(["python3", f"{DEST}/conjurer", "-d"])
    node.run(["rm", "-rf", DEST])
    node.write("/etc/hostname", node.name + "\n")
    node.run(["hostname", node.name])


def conjurer(node, *flags, prefix=()):
    return node.run([*prefix, "python3", f"{DEST}/conjurer", f"-edge-name={CLUSTER}",
                     f"-passphrase-file={DEST}/{CLUSTER}-passphrase.txt",
                     f"-creds-file={DEST}/{CLUSTER}.pem", *flags], timeout=300)


def test_credentials_name_no_ntp_server(default_installer):
    opened = credentials.open_credentials(
        (default_installer / f"{CLUSTER}.pem").read_text(),
        (default_installer / f"{CLUSTER}-passphrase.txt").read_text(), CLUSTER)
    assert "ntp_server" not in opened.controller


def test_no_node_agent_software_names_the_command(default_controller, node):
    """`start` built the bundle; a controller whose bundle was removed since must say so."""
    manifest = Layout.for_root(default_controller.root).artifacts_dir / "agent/manifest.json"
    aside = manifest.with_name("manifest.json.aside")
    manifest.rename(aside)
    try:
        proc = conjurer(node)
    finally:
        aside.rename(manifest)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"[-] install failed: the controller at "
                           f"{default_controller.interface}:{default_controller.https_port} "
                           "has no node-agent software yet")
    assert "kubesalt-controller agent-bundle" in line
    assert line.endswith("nothing on this node was changed")
    assert not node.exists("/opt/kubesalt")


def test_first_enrollment_works_without_ntp_server(default_controller, node):
    checked = conjurer(node, "-precheck")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [skew] = [line for line in checked.stdout.splitlines() if line.startswith("time-skew")]
    assert "PASS" in skew and "the controller's clock" in skew
    assert not [line for line in checked.stdout.splitlines() if line.startswith("ntp ")]

    proc = conjurer(node, "-t")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("[+] Successfully provisioned node")
    timings = [line for line in lines if re.fullmatch(r"\[\+\] Step \d took \d+\.\d s", line)]
    assert len(timings) == 5, lines
    assert any(line.startswith("time-sync") for line in lines)  # -t's preflight table
    hostname = node.run(["hostname"]).stdout.strip()

    def discovered():
        rows = default_controller.run_ok("node.list", f"search={hostname}")
        return rows and rows[0]["status"] == "DISCOVERED"

    wait_for(discovered, 60, "the node to be discovered by the default controller")


def test_a_node_clock_ten_minutes_off_is_refused(default_controller, node):
    if not node.exists("/usr/bin/faketime"):
        pytest.skip("the lab image has no faketime")
    hostname = node.run(["hostname"]).stdout.strip()
    # The node shares the host kernel's clock; faketime moves only conjurer's view of it.
    proc = conjurer(node, prefix=("faketime", "-f", "+600s"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "[time-skew]" in proc.stderr
    where = f"{default_controller.interface}:{default_controller.https_port}"
    assert re.search(r"this node's clock is (599|600|601) s \(10\.0 min\) ahead of the "
                     rf"controller's clock \(the Date of its HTTPS answer from {where}",
                     proc.stderr), proc.stderr
    assert "timedatectl set-ntp true" in proc.stderr and "chronyc makestep" in proc.stderr
    assert "nothing on this node was changed" in proc.stderr
    assert not node.exists("/opt/kubesalt")
    assert node.run(["hostname"]).stdout.strip() == hostname
