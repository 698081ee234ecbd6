"""The operations' shared context: one join order for provisioning, upgrades, removals and the
pillar's first master, fed a generator as readily as a list (a merge once sorted a generator
twice and lost every worker)."""

import json

from kubesalt.master import layout as layout_mod
from kubesalt.master.inventory import artifacts, clusters, keys
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.inventory.store import Store
from kubesalt.master.ops import context, removal, upgrade
from tests.unit.keyfiles import public_key

MATRIX = matrix_mod.default()
CURRENT, NEXT = "1.29.14", "1.30.10"


def node(node_id, *roles):
    return {"id": node_id, "config": {"roles": list(roles)}}


MIXED = [node("w2", "worker"), node("m2", "master"), node("w1", "worker", "storage"),
         node("m1", "master"), node("m3", "master", "worker")]


def test_join_order_reads_a_generator_once_and_puts_masters_first():
    expected = ["m1", "m2", "m3", "w1", "w2"]
    assert [n["id"] for n in context.join_order(list(MIXED))] == expected
    assert [n["id"] for n in context.join_order(n for n in MIXED)] == expected
    assert context.first_master(n for n in MIXED) == "m1"
    assert context.first_master([node("w1", "worker")]) is None
    assert context.first_master([]) is None


def ready_cluster(tmp_path, roles):
    """A READY cluster at CURRENT whose nodes hold accepted keys, with NEXT's artifacts indexed."""
    layout = layout_mod.Layout.for_root(tmp_path / "root")
    store = Store(layout.state_dir)
    clusters.create(store, "c", k8s_version=CURRENT, ha=True, dedicated_master=True)
    accepted = layout.pki_dir / "minions"
    accepted.mkdir(parents=True)
    pub = public_key()
    for number, (node_id, node_roles) in enumerate(roles.items()):
        (accepted / node_id).write_bytes(pub)
        store.enroll_node(node_id, "c", keys.spki_sha256(pub), f"serial-{node_id}",
                          f"10.0.0.{number + 1}")
        store.set_node_config(node_id, {"roles": node_roles, "interface": "eth0",
                                        "address": f"10.0.0.{number + 1}",
                                        "storage_devices": []})
    store.set_node_phase(list(roles), "READY")
    store.set_cluster_state("c", "READY")
    layout.artifacts_dir.mkdir(parents=True, exist_ok=True)
    (layout.artifacts_dir / artifacts.INDEX).write_text(json.dumps(
        {path: "0" * 64 for path in artifacts.wanted(MATRIX, NEXT).values()}))
    return store, layout


ROLES = {"w2": ["worker"], "m3": ["master"], "w1": ["worker"], "m1": ["master"],
         "m2": ["master"]}


def stage_nodes(op):
    return {s["name"]: s["nodes"] for s in op["stages"] if s["state"] == "pending"}


def test_an_upgrade_takes_masters_then_workers_each_by_id(tmp_path):
    store, layout = ready_cluster(tmp_path, ROLES)
    op = upgrade.start(store, layout, "c", str(tmp_path), k8s_version=NEXT, spawn=False)
    nodes = stage_nodes(op)
    assert nodes["upgrade-first-master"] == ["m1"]
    assert nodes["upgrade-other-masters"] == ["m2", "m3"]
    assert nodes["upgrade-workers"] == ["w1", "w2"]


def test_a_removal_drains_from_the_first_master_that_stays(tmp_path):
    store, layout = ready_cluster(tmp_path, ROLES)
    op = removal.start(store, layout, "m1", str(tmp_path), spawn=False, forget=list)
    nodes = stage_nodes(op)
    assert nodes["drain"] == ["m2"] and nodes["etcd-member"] == ["m2"]
    assert nodes["reset-node"] == ["m1"]


def test_a_dedicated_clusters_worker_may_leave_while_another_stays(tmp_path):
    store, layout = ready_cluster(tmp_path, ROLES)
    op = removal.start(store, layout, "w2", str(tmp_path), spawn=False, forget=list)
    assert stage_nodes(op)["reset-node"] == ["w2"]
