import json
from dataclasses import replace

import pytest
from kubesalt.master import layout as layout_mod
from kubesalt.master.errors import Refused
from kubesalt.master.inventory import artifacts, clusters, keys
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.inventory.store import Store
from kubesalt.master.ops import executor, provision

from tests.specs import cluster_spec
from tests.unit import keyfiles
from tests.unit.fake_salt import OK, FakeSalt, failed_state

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


# A worker added to a READY cluster: its failure is the worker's, and the rerun finishes it.

def grown_cluster(tmp_path):
    """READY converged cluster `grow` (m1) with a new configured worker w1, keys accepted and
    the artifact store complete."""
    layout = layout_mod.Layout.for_root(tmp_path)
    store = Store(layout.state_dir)
    clusters.create(store, "grow", blueprint="minimal")
    pub = keyfiles.public_key()
    for node_id, roles in (("m1", ["master", "worker"]), ("w1", ["worker"])):
        store.enroll_node(node_id, "grow", keys.spki_sha256(pub), "s1", "10.0.0.1")
        keyfiles.put_key(layout, "minions", node_id, pub)
        store.set_node_config(node_id, {"roles": roles, "interface": "eth0",
                                        "address": "10.0.0.1", "storage_devices": []})
    store.set_node_phase(["m1"], "READY")
    store.set_cluster_state("grow", "READY")
    wanted = artifacts.wanted(matrix_mod.default(), store.cluster("grow").spec.k8s_version)
    layout.artifacts_dir.mkdir(parents=True)
    (layout.artifacts_dir / artifacts.INDEX).write_text(
        json.dumps(dict.fromkeys(wanted.values(), {})))
    return store, layout


def test_a_failed_addition_leaves_the_cluster_ready_and_its_rerun_finishes_only_the_worker(
        tmp_path):
    store, layout = grown_cluster(tmp_path)
    op = provision.start(store, layout, "grow", lambda n: GRAINS, tmp_path, spawn=False)
    assert op["params"] == {"adding": ["w1"]}
    join_fails = FakeSalt(["m1", "w1"], lambda node, fun, arg: {
        "return": failed_state("kubeadm join failed"), "retcode": 2}
        if fun == "state.sls" and arg[0] == "kubesalt.kubeadm.join_worker"
        else {"return": OK if fun == "state.sls" else {}, "retcode": 0})
    failed = executor.execute(store, join_fails, op["id"], masters=["m1"])
    assert (failed["state"], failed["failed_stage"], failed["failed_node"]) == \
        ("failed", "worker-join", "w1")
    # the cluster serves on: only the node being added shows the failure
    assert store.get_cluster("grow")["state"] == "READY"
    assert {n["id"]: n["phase"] for n in store.list_nodes("grow")} == \
        {"m1": "READY", "w1": "FAILED"}

    rerun = provision.start(store, layout, "grow", lambda n: GRAINS, tmp_path, spawn=False)
    assert rerun["params"] == {"adding": ["w1"]}
    stages = {s["name"]: s for s in rerun["stages"]}
    assert all(stages[name]["state"] == "skipped" and stages[name]["nodes"] == ["w1"]
               for name in ("prechecks", "os", "binaries", "containerd", "consul")), stages
    assert stages["worker-join"]["nodes"] == ["w1"] and \
        stages["worker-join"]["state"] == "pending"
    salt = FakeSalt(["m1", "w1"])
    done = executor.execute(store, salt, rerun["id"], masters=["m1"])
    assert done["state"] == "done"
    assert {(node, arg[0]) for node, fun, arg, _ in salt.started if fun == "state.sls"} == \
        {("w1", "kubesalt.kubeadm.join_worker"), ("m1", "kubesalt.wait_pods")}
    assert {n["id"]: n["phase"] for n in store.list_nodes("grow")} == \
        {"m1": "READY", "w1": "READY"}
