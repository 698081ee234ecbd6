"""Runs last: `down` leaves no node, namespace, link, mount, cgroup or process behind."""

import subprocess

import pytest

from tests.labkit import Lab
from tests.labkit.lab import BRIDGE, CGROUP_ROOTS, PREFIX, STATE

pytestmark = pytest.mark.lab


def test_down_leaves_nothing_behind(lab):
    """After every other lab test (this module sorts last), the lab goes down and is
    checked by listing what the kernel has."""
    lab = Lab()
    if not lab.nodes:
        lab.up(2, ntp=False)
    # a node in the middle of a reboot: its next boot must neither outlive nor stall `down`
    lab.nodes[0].run(["systemctl", "reboot"], check=True)
    lab.down()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert BRIDGE not in links and "vb-" not in links
    mounts = subprocess.run(["mount"], capture_output=True, text=True).stdout
    assert f"{PREFIX}-" not in mounts
    for root in CGROUP_ROOTS:
        assert not (root / PREFIX).exists()
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "systemd-nspawn" not in procs
    assert not (STATE / "nodes").exists() or not any((STATE / "nodes").iterdir())
    # every network namespace left belongs to the host, none to a node's systemd
    namespaces = subprocess.run(["lsns", "-t", "net", "-n", "-o", "COMMAND"],
                                capture_output=True, text=True).stdout.split()
    assert "/usr/lib/systemd/systemd" not in namespaces
