"""The lab itself: real booted nodes, isolated from the host and from each other."""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubesalt.minion_bootstrap import probes
from tests.integration.test_readme import readme_command_lines
from tests.labkit import LabError
from tests.labkit.lab import PREFIX
from tests.waiting import wait_for

pytestmark = pytest.mark.lab


def test_the_lab_has_four_nodes(lab):
    # how fast they boot is a benchmark's business: python -m bench.lab_boot
    assert len(lab.nodes) >= 4


def test_nodes_have_their_own_identity_and_systemd(lab):
    seen = set()
    for node in lab.nodes:
        assert node.run(["systemctl", "is-system-running"]).stdout.strip() in (
            "running", "degraded")
        hostname = node.run(["hostname"]).stdout.strip()
        address = node.run(["ip", "-4", "-o", "addr", "show", "host0"]).stdout
        assert hostname == node.name
        assert f"{node.address}/24" in address
        seen.add((hostname, node.address, node.read("/etc/machine-id")))
    assert len(seen) == len(lab.nodes)


def test_tcp_between_nodes_and_to_the_controller(lab):
    first, second = lab.nodes[:2]
    server = ("import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
              "socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 7777)); s.listen(); "
              "c,_=s.accept(); c.sendall(b'hello from ' + socket.gethostname().encode())")
    first.systemctl("stop", "labecho", check=False)
    first.run(["systemd-run", "--unit=labecho", "python3", "-c", server], check=True)
    deadline = time.monotonic() + 10
    while True:
        got = second.run(["python3", "-c", "import socket; s=socket.create_connection(("
                          f"'{first.address}', 7777), 2); print(s.recv(100).decode())"])
        if got.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got.stdout.strip() == f"hello from {first.name}"
    ping = second.run(["python3", "-c", "import socket; socket.create_connection(("
                       f"'{lab.bridge_address}', 22222), 2)"])
    # nothing listens there on the host: refused (not timed out) proves the path is open
    assert "ConnectionRefusedError" in ping.stderr


def test_files_in_etc_stay_in_their_node(lab):
    first, second = lab.nodes[:2]
    first.write("/etc/kubesalt-lab-probe", "only node1\n")
    assert first.read("/etc/kubesalt-lab-probe") == "only node1\n"
    assert not second.exists("/etc/kubesalt-lab-probe")
    assert subprocess.run(["test", "-e", "/etc/kubesalt-lab-probe"]).returncode != 0


def test_units_survive_and_stay_in_their_node(lab):
    node = lab.nodes[0]
    node.write("/etc/systemd/system/labsleep.service",
               "[Service]\nExecStart=/bin/sleep infinity\n")
    node.systemctl("daemon-reload", check=True)
    node.systemctl("start", "labsleep", check=True)
    pid_in_node = node.systemctl("show", "-p", "MainPID", "--value", "labsleep").stdout.strip()
    assert pid_in_node not in ("", "0")
    assert node.systemctl("is-active", "labsleep").stdout.strip() == "active"
    # one kernel: the host sees the process, but the unit exists only in the node
    assert not Path("/etc/systemd/system/labsleep.service").exists()
    node.systemctl("stop", "labsleep")


def test_ntp_server_answers_and_can_skew(lab):
    node = lab.nodes[0]
    code = ("import sys; sys.path.insert(0, '/tmp/kp');"
            "from minion_bootstrap.probes import sntp_offset; print(sntp_offset(sys.argv[1]))")
    # the package whole: its modules import each other relatively, as conjurer's zipapp has them
    node.push(os.path.dirname(probes.__file__), "/tmp/kp/minion_bootstrap")
    offset = float(node.run(["python3", "-c", code, lab.ntp_server_address],
                            check=True).stdout)
    assert abs(offset) < 2
    lab.skew_ntp(120)
    try:
        offset = float(node.run(["python3", "-c", code, lab.ntp_server_address],
                                check=True).stdout)
        assert offset == pytest.approx(120, abs=5)
    finally:
        lab.skew_ntp(0)
    assert abs(probes.sntp_offset(lab.ntp_server_address)) < 2


def test_three_member_etcd_is_healthy(lab):
    members = lab.nodes[:3]
    cluster = ",".join(f"{n.name}=http://{n.address}:2380" for n in members)
    for node in members:
        node.write("/etc/default/etcd",
                   f"ETCD_NAME={node.name}\nETCD_DATA_DIR=/var/lib/etcd/lab\n"
                   f"ETCD_LISTEN_PEER_URLS=http://{node.address}:2380\n"
                   f"ETCD_LISTEN_CLIENT_URLS=http://{node.address}:2379,http://127.0.0.1:2379\n"
                   f"ETCD_INITIAL_ADVERTISE_PEER_URLS=http://{node.address}:2380\n"
                   f"ETCD_ADVERTISE_CLIENT_URLS=http://{node.address}:2379\n"
                   f"ETCD_INITIAL_CLUSTER={cluster}\nETCD_INITIAL_CLUSTER_STATE=new\n"
                   "ETCD_INITIAL_CLUSTER_TOKEN=kslab\n")
        # Debian runs etcd as user etcd, which owns /var/lib/etcd only.
        # a Type=notify member waits for quorum: start all without blocking
        node.systemctl("restart", "--no-block", "etcd", check=True)
    endpoints = ",".join(f"http://{n.address}:2379" for n in members)
    deadline = time.monotonic() + 60
    while True:
        health = members[0].run(["etcdctl", "--endpoints", endpoints, "endpoint", "health"])
        if health.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert health.returncode == 0, health.stderr
    assert health.stdout.count("is healthy") + health.stderr.count("is healthy") == 3
    for node in members:
        node.systemctl("stop", "etcd")
        node.run(["rm", "-rf", "/var/lib/etcd/lab", "/etc/default/etcd"])


BOOT_PROBE = "/etc/systemd/system/lab-boot-probe.service"
BOOT_LOG = "/var/lib/lab-boot-probe"


@pytest.fixture
def probed_node(lab):
    """The last node, with a file on its disk and an enabled unit that logs every boot."""
    node = lab.nodes[-1]
    node.write("/root/survivor", "written before\n")
    node.write(BOOT_PROBE, "[Service]\nType=oneshot\nRemainAfterExit=yes\n"
                           f"ExecStart=/bin/sh -c 'echo boot >> {BOOT_LOG}'\n\n"
                           "[Install]\nWantedBy=multi-user.target\n")
    node.systemctl("enable", "--now", "lab-boot-probe", check=True)
    yield node, _identity(node)
    if node.pid is None:
        node.boot()
        node.wait_running()
    node.systemctl("disable", "--now", "lab-boot-probe")
    node.run(["rm", "-f", BOOT_PROBE, BOOT_LOG, "/root/survivor"])


def _identity(node):
    return (node.run(["hostname"]).stdout, node.read("/etc/machine-id"),
            node.run(["ip", "-4", "-o", "addr", "show", "host0"]).stdout.split()[3])


def _boots(node):
    return node.read(BOOT_LOG).count("boot")


def _assert_the_same_machine_back(node, lab, identity, boots):
    assert node.run(["systemctl", "is-system-running"]).stdout.strip() in ("running",
                                                                           "degraded")
    assert _identity(node) == identity
    assert node.read("/root/survivor") == "written before\n"
    assert node.systemctl("is-active", "lab-boot-probe").stdout.strip() == "active"
    assert _boots(node) == boots  # the enabled unit ran once more, at this boot
    # a refused connection (nothing listens) proves the path, both ways over the bridge
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((node.address, 22222), 2)
    back = node.run(["python3", "-c", "import socket; socket.create_connection(("
                     f"'{lab.bridge_address}', 22222), 2)"])
    assert "ConnectionRefusedError" in back.stderr, back.stderr


def test_a_node_reboots_with_its_disk_units_and_network(lab, probed_node):
    node, identity = probed_node
    before = node.pid
    assert node.reboot() in ("running", "degraded")
    assert node.pid != before
    _assert_the_same_machine_back(node, lab, identity, boots=2)


def test_a_node_reboots_itself(lab, probed_node):
    """`systemctl reboot` in the node: nspawn exits 133 and the node boots again."""
    node, identity = probed_node
    before = node.pid
    node.run(["systemctl", "reboot"], check=True)
    node.wait_running(replacing=before)
    _assert_the_same_machine_back(node, lab, identity, boots=2)


def test_a_node_survives_a_power_cut(lab, probed_node):
    node, identity = probed_node
    before = node.pid
    node.power_cut()
    assert node.pid != before
    _assert_the_same_machine_back(node, lab, identity, boots=2)


def test_a_powered_off_node_is_down_until_booted(lab, probed_node):
    node, identity = probed_node
    assert _processes_of(node)
    node.power_off()
    assert node.pid is None and _processes_of(node) == []
    assert {n["name"]: n["running"] for n in lab.status()["nodes"]}[node.name] is False
    with pytest.raises(LabError, match="is not running"):
        node.run(["true"])
    with pytest.raises(LabError, match="is not running"):
        node.reboot()
    node.boot()
    node.wait_running()
    _assert_the_same_machine_back(node, lab, identity, boots=2)


def _processes_of(node):
    """Host PIDs running in the node's cgroups (its launcher, nspawn and the machine); not
    zombies: launchers this process started and did not reap stay listed under the name."""
    inside = re.compile(rf":/{PREFIX}/{node.name}(/|$)", re.M)
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z" and inside.search((proc / "cgroup").read_text()):
                found.append(int(proc.name))
        except OSError:  # ended meanwhile
            continue
    return found


REPO = Path(__file__).resolve().parents[2]
# The README's lab lines this module runs as printed; the others are what the lab fixture
# (prepare, up), test_zz_teardown (down) and the artifact tests do through the same functions,
# and running them here would replace the lab under the other tests.
README_LAB_COMMANDS_RUN_HERE = {"status", "exec", "push", "reboot", "power-cut"}
README_LAB_COMMANDS_RUN_ELSEWHERE = {"prepare", "up", "down", "artifacts"}


def _labkit(*words, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "tests.labkit", *words], cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_the_readme_lab_lines_run(lab, tmp_path):
    lines = [shlex.split(line, comments=True)[3:] for line in readme_command_lines()
             if line.startswith("python -m tests.labkit ")]
    assert {words[0] for words in lines} == \
        README_LAB_COMMANDS_RUN_HERE | README_LAB_COMMANDS_RUN_ELSEWHERE
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "pushed").write_text("from the host\n")
    for words in lines:
        if words[0] not in README_LAB_COMMANDS_RUN_HERE:
            continue
        proc = _labkit(*words, cwd=tmp_path)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (words, proc.stderr)
        node = lab.node(words[1]) if len(words) > 1 else None
        if words[0] in ("reboot", "power-cut"):
            event = json.loads(proc.stdout)
            assert event["node"] == node.name and event["event"] == words[0]
            assert event["state"] in ("running", "degraded")
            assert event["systemd_pid"] == node.pid != event["systemd_pid_before"]
            # what `push` put on the node's disk is still there
            assert node.read("/root/dir/pushed") == "from the host\n"
        elif words[0] == "exec":
            assert proc.stdout.strip() in ("running", "degraded")
        elif words[0] == "status":
            assert all(n["running"] for n in json.loads(proc.stdout)["nodes"])
    lab.node("node1").run(["rm", "-rf", "/root/dir"])


def test_the_cli_refuses_unknown_and_stopped_nodes(lab):
    for command in ("reboot", "power-cut"):
        proc = _labkit(command, "node999")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("lab: unknown node 'node999': the lab has node1,")
    node = lab.nodes[-1]
    node.power_off()
    try:
        proc = _labkit("reboot", node.name)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert proc.stderr == f"lab: {node.name} is not running " \
                              "(python -m tests.labkit status)\n"
    finally:
        node.boot()
        node.wait_running()


def test_the_ntp_node_serves_again_after_a_power_cut(lab):
    """Its NTP server is an enabled unit, not something the host starts after boot."""
    lab.node("ntp").power_cut()

    def answer():
        try:
            return {"offset": probes.sntp_offset(lab.ntp_server_address, timeout=1)}
        except (OSError, ValueError):
            return None

    assert abs(wait_for(answer, timeout=20, what="the lab's NTP server", interval=0.2)
               ["offset"]) < 2
