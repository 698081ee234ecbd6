from dataclasses import replace

import pytest
from kubesalt.master.errors import Refused
from kubesalt.master.ops import provision

from tests.specs import cluster_spec

SPEC = cluster_spec(ha=True, dedicated_master=True, storage="rook-ceph",
                    blueprint="default-upstream", cni="calico")
GRAINS = {"os": "Debian", "os_family": "Debian", "kernelrelease": "6.1.0-18-amd64",
          "cpuarch": "x86_64"}


def view(node_id, *roles, status="APPROVED"):
    return {"id": node_id, "status": status,
            "config": {"roles": list(roles)} if roles else None}


def fields(exc):
    return [e["field"] for e in exc.value.errors]


def test_valid_dedicated_multi_orders_masters_first():
    nodes = [view("w1", "worker", "storage"), view("m2", "master", "storage"),
             view("m1", "master", "storage"), view("m3", "master")]
    ordered = provision.validate(SPEC, nodes, lambda n: GRAINS)
    assert [n["id"] for n in ordered] == ["m1", "m2", "m3", "w1"]


def test_every_problem_listed_at_once():
    nodes = [view("m1", "master"), view("d1", status="DISCOVERED"), view("u1")]
    with pytest.raises(Refused) as exc:
        provision.validate(SPEC, nodes, lambda n: GRAINS)
    assert set(fields(exc)) == {"nodes", "masters", "workers", "storage"}
    messages = " ".join(e["message"] for e in exc.value.errors)
    assert "d1 is DISCOVERED" in messages and "u1 has no configuration" in messages


def test_rejected_nodes_do_not_count():
    spec = replace(SPEC, ha=False, dedicated_master=False, storage="none")
    nodes = [view("m1", "master", "worker"), view("r1", status="REJECTED")]
    assert [n["id"] for n in provision.validate(spec, nodes, lambda n: GRAINS)] == ["m1"]


def test_cilium_kernel_and_rhel7():
    spec = replace(SPEC, ha=False, dedicated_master=False, storage="none", cni="cilium")
    nodes = [view("m1", "master", "worker")]
    old = dict(GRAINS, kernelrelease="4.19.56-1")
    with pytest.raises(Refused) as exc:
        provision.validate(spec, nodes, lambda n: old)
    assert fields(exc) == ["cni"]
    rhel7 = dict(GRAINS, os_family="RedHat", osmajorrelease=7, kernelrelease="5.4.0")
    with pytest.raises(Refused):
        provision.validate(spec, nodes, lambda n: rhel7)
    ok = dict(GRAINS, kernelrelease="4.19.57")
    assert provision.validate(spec, nodes, lambda n: ok)


def test_arm64_only_ubuntu_workers():
    spec = replace(SPEC, ha=False, storage="none")
    nodes = [view("m1", "master"), view("w1", "worker")]
    arm = {"w1": dict(GRAINS, cpuarch="aarch64"), "m1": GRAINS}
    with pytest.raises(Refused):
        provision.validate(spec, nodes, arm.get)
    arm["w1"]["os"] = "Ubuntu"
    assert provision.validate(spec, nodes, arm.get)


def test_adding_to_ready_cluster_refuses_new_master():
    spec = replace(SPEC, ha=False, storage="none")
    nodes = [view("m1", "master", status="READY"), view("w1", "worker", status="READY"),
             view("m2", "master")]
    with pytest.raises(Refused) as exc:
        provision.validate(spec, nodes, lambda n: GRAINS, new_only=True)
    assert "only workers can be added" in str(exc.value)
