"""The lab itself: real booted nodes, isolated from the host and from each other."""

import subprocess
import time
from pathlib import Path

import pytest

from kubesalt.minion_bootstrap import probes

pytestmark = pytest.mark.lab


def test_four_nodes_boot_quickly(lab):
    assert len(lab.nodes) >= 4
    assert lab.up_seconds < 20, f"the lab took {lab.up_seconds:.1f}s to boot"


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
            "from probes import sntp_offset; print(sntp_offset(sys.argv[1]))")
    node.push(probes.__file__, "/tmp/kp/probes.py")
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
