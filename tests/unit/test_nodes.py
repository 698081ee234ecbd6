import pytest

from kubesalt.master.inventory import nodes
from kubesalt.master.errors import Refused
from tests.specs import cluster_spec

GRAINS = {
    "cpuarch": "x86_64", "os": "Debian",
    "kubesalt_interfaces": [{"name": "eth0", "ipv4": ["10.0.0.5"], "up": True},
                            {"name": "eth1", "ipv4": [], "up": True}],
    "kubesalt_storage_candidates": ["/dev/sdb", "/dev/sdc1"],
}
CONVERGED = cluster_spec(dedicated_master=False)
DEDICATED = cluster_spec(dedicated_master=True)


def fields(exc):
    return [e["field"] for e in exc.value.errors]


def test_converged_master_also_works():
    config = nodes.validate_config(CONVERGED, GRAINS, "master,storage", "eth0", "/dev/sdb")
    assert config == {"roles": ["master", "storage", "worker"], "interface": "eth0",
                      "address": "10.0.0.5", "storage_devices": ["/dev/sdb"]}


@pytest.mark.parametrize("spec,roles,interface,devices,field", [
    (DEDICATED, "master,worker", "eth0", None, "roles"),
    (CONVERGED, "", "eth0", None, "roles"),
    (CONVERGED, "master,chef", "eth0", None, "roles"),
    (CONVERGED, "worker", "eth9", None, "interface"),
    (CONVERGED, "worker", "eth1", None, "interface"),
    (CONVERGED, "worker", None, None, "interface"),
    (CONVERGED, "storage", "eth0", None, "storage_devices"),
    (CONVERGED, "storage", "eth0", "/dev/sda", "storage_devices"),
    (CONVERGED, "worker", "eth0", "/dev/sdb", "storage_devices"),
])
def test_bad_configuration_refused(spec, roles, interface, devices, field):
    with pytest.raises(Refused) as exc:
        nodes.validate_config(spec, GRAINS, roles, interface, devices)
    assert field in fields(exc)


def test_arm64_worker_needs_ubuntu():
    arm = dict(GRAINS, cpuarch="aarch64")
    with pytest.raises(Refused):
        nodes.validate_config(CONVERGED, arm, "worker", "eth0", None)
    with pytest.raises(Refused):
        nodes.validate_config(CONVERGED, dict(arm, os="Ubuntu"), "master", "eth0", None)
    assert nodes.validate_config(CONVERGED, dict(arm, os="Ubuntu"), "worker", "eth0", None)


def test_status_derivation():
    record = {"phase": None}
    assert nodes.status_of(record, None) == "ENROLLED"
    assert nodes.status_of(record, "pending") == "DISCOVERED"
    assert nodes.status_of(record, "accepted") == "APPROVED"
    assert nodes.status_of(record, "rejected") == "REJECTED"
    assert nodes.status_of(record, "mismatch") == "KEY_MISMATCH"
    assert nodes.status_of({"phase": "READY"}, "accepted") == "READY"
    # a phase never hides a rejection
    assert nodes.status_of({"phase": "READY"}, "rejected") == "REJECTED"
