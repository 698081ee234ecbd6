"""Deleting a cluster and forgetting keys, without a master: what cluster.delete refuses and
changes, the operation that deletes a cluster with its nodes, and what a follower of an
operation answers when the operation's record goes with its cluster."""

import pytest

from kubesalt.master import layout as layout_mod
from kubesalt.master.errors import Refused
from kubesalt.master.inventory import clusters, keys
from kubesalt.master.inventory.store import NotFound, Store
from kubesalt.master.ops import deletion, executor, plan, provision, reset, status
from kubesalt.master.trust import cluster_secrets
from tests.unit.keyfiles import public_key, put_key
from tests.unit.fake_salt import OK, FakeSalt, failed_state

STAGES = [{"name": "reset-nodes", "title": "Reset", "nodes": ["n1"], "skip": ""},
          {"name": "delete-cluster", "title": "Delete", "nodes": [], "skip": ""}]


def following(tmp_path, kind):
    """A store whose cluster `c` has a running operation of `kind`, and a progress callback
    that deletes the cluster once the follower has seen the operation running."""
    store = Store(tmp_path)
    store.create_cluster("c", {})
    store.create_operation("op-1", "c", kind, STAGES, lambda pid: True)
    store.start_operation("op-1", 1)
    store.record_stage("op-1", "reset-nodes", "running", 100.0, None, None, {})
    lines = []

    def progress(line):
        lines.append(line)
        if len(lines) == 1:
            store.delete_cluster("c")

    return store, progress, lines


def test_a_follower_of_a_delete_that_removed_its_cluster_answers_deleted(tmp_path):
    store, progress, lines = following(tmp_path, "delete")
    final = status.started(store, store.operation("op-1"), True, 30, progress)
    assert final["deleted"] == "c" and final["state"] == "done" and "retcode" not in final
    assert [s["state"] for s in final["stages"]] == ["done", "done"]
    assert [line.split()[1:3] for line in lines[1:]] == [["reset-nodes", "done"],
                                                          ["delete-cluster", "done"]]


def test_a_delete_that_ended_before_its_follower_first_looked_answers_deleted(tmp_path):
    store, _, _ = following(tmp_path, "delete")
    op = store.operation("op-1")
    store.delete_cluster("c")
    assert status.started(store, op, True, 30, print)["deleted"] == "c"


@pytest.mark.parametrize("kind", ["provision", "reset"])
def test_a_follower_whose_operation_vanished_otherwise_says_so_and_fails(tmp_path, kind):
    store, progress, _ = following(tmp_path, kind)
    final = status.started(store, store.operation("op-1"), True, 30, progress)
    assert (final["state"], final["retcode"], final["kind"]) == ("gone", 1, kind)
    assert "op-1 is no longer recorded; cluster c no longer exists" in final["error"]
    assert "deleted" not in final


def test_cluster_status_of_a_cluster_deleted_meanwhile_is_a_refusal(tmp_path):
    store, _, _ = following(tmp_path, "delete")
    store.delete_cluster("c")
    assert store.operations("c") == []
    with pytest.raises(Refused) as refused:
        status.cluster_status(store, "c")
    assert refused.value.errors[0]["field"] == "name"


# ---- cluster.delete ---------------------------------------------------------------------

ACCEPTED = "node-0a1b2c3d-10-0-0-1-edge"
PENDING = "node-0a1b2c3d-10-0-0-2-edge"
STRAY = "node-0a1b2c3d-10-0-0-3-edge"


@pytest.fixture(scope="module")
def pub():
    return public_key()


@pytest.fixture
def edge(tmp_path):
    """An empty cluster `edge` (reset_enabled left False) with secrets and installer files."""
    layout = layout_mod.Layout.for_root(tmp_path / "root")
    store = Store(layout.state_dir)
    clusters.create(store, "edge")
    store.add_installer("edge", "s1", 0, 2**40)
    cluster_secrets.ensure(layout, "edge")
    (layout.installers_dir / "edge").mkdir(parents=True)
    (layout.installers_dir / "edge" / "edge-passphrase.txt").write_text("secret\n")
    return store, layout


@pytest.fixture
def edge_with_nodes(edge, pub):
    """`edge` with ACCEPTED (configured master), PENDING (key never accepted) and STRAY (an
    accepted key named for edge that no record owns)."""
    store, layout = edge
    for node_id, key_dir in ((ACCEPTED, "minions"), (PENDING, "minions_pre")):
        store.enroll_node(node_id, "edge", keys.spki_sha256(pub), "s1", "10.0.0.1")
        put_key(layout, key_dir, node_id, pub)
    store.set_node_config(ACCEPTED, {"roles": ["master", "worker"], "interface": "eth0",
                                     "address": "10.0.0.1", "storage_devices": []})
    store.set_node_phase([ACCEPTED], "READY")
    put_key(layout, "minions", STRAY, pub)
    return store, layout


def refusal(call):
    with pytest.raises(Refused) as refused:
        call()
    (error,) = refused.value.errors
    return error["field"], error["message"]


def unchanged(store, layout, node_ids):
    assert store.get_cluster("edge")["state"] == "CREATED"
    assert store.operations("edge") == []
    assert [n["id"] for n in store.list_nodes("edge")] == node_ids
    assert cluster_secrets.load(layout, "edge") is not None
    assert (layout.installers_dir / "edge" / "edge-passphrase.txt").exists()


def test_a_cluster_with_nothing_on_it_is_deleted_at_once_with_its_files(edge, tmp_path):
    store, layout = edge
    assert deletion.start(store, layout, "edge", tmp_path, spawn=False) is None
    assert [c["name"] for c in store.list_clusters()] == []
    assert store.installers("edge") == []
    assert cluster_secrets.load(layout, "edge") is None
    assert not (layout.installers_dir / "edge").exists()


def test_a_cluster_with_nodes_is_refused_naming_every_way_out(edge_with_nodes, tmp_path):
    store, layout = edge_with_nodes
    for confirm in (False, True):
        field, message = refusal(lambda confirm=confirm: deletion.start(
            store, layout, "edge", tmp_path, confirm=confirm, spawn=False))
        assert field == "name"
        assert f"edge has 2 enrolled nodes ({ACCEPTED}, {PENDING})" in message
        for way_out in ("salt-run cluster.reset edge confirm=True",
                        "salt-run node.remove NODE", f"no node owns ({STRAY})",
                        "salt-run node.forget NODE",
                        "salt-run cluster.delete edge force=True confirm=True"):
            assert way_out in message, way_out
    unchanged(store, layout, [ACCEPTED, PENDING])


def test_a_key_named_for_the_cluster_that_no_node_owns_is_enough_to_refuse(edge, pub,
                                                                            tmp_path):
    store, layout = edge
    put_key(layout, "minions_rejected", STRAY, pub)
    clusters.create(store, "b-edge")
    put_key(layout, "minions", "node-0a1b2c3d-10-0-0-4-b-edge", pub)  # b-edge's, not edge's
    field, message = refusal(lambda: deletion.start(store, layout, "edge", tmp_path,
                                                    spawn=False))
    assert field == "name" and f"({STRAY})" in message and "b-edge" not in message
    unchanged(store, layout, [])


def test_force_needs_confirm_even_on_an_empty_cluster(edge, tmp_path):
    store, layout = edge
    field, message = refusal(lambda: deletion.start(store, layout, "edge", tmp_path,
                                                    force=True, spawn=False))
    assert field == "confirm"
    assert "salt-run cluster.delete edge force=True confirm=True" in message
    unchanged(store, layout, [])


@pytest.mark.parametrize(("kind", "words"), [
    ("provision", "provision op-run is running on edge; stop it first: salt-run "
                  "cluster.cancel edge"),
    ("delete", "edge is being deleted by op-run; follow it with salt-run cluster.status edge"),
])
def test_a_running_operation_is_refused_even_with_force(edge, tmp_path, kind, words):
    store, layout = edge
    store.create_operation("op-run", "edge", kind, [], lambda pid: True)
    store.start_operation("op-run", 1)
    for force in (False, True):
        assert refusal(lambda force=force: deletion.start(
            store, layout, "edge", tmp_path, force=force, confirm=force,
            spawn=False)) == ("name", words)
    assert store.get_cluster("edge") and cluster_secrets.load(layout, "edge") is not None


def test_force_starts_a_delete_that_resets_only_accepted_nodes(edge_with_nodes, tmp_path):
    store, layout = edge_with_nodes
    op = deletion.start(store, layout, "edge", tmp_path, force=True, confirm=True,
                        spawn=False)
    assert op["kind"] == "delete" and op["state"] == "queued"
    assert [(s["name"], s["nodes"], s["state"]) for s in op["stages"]] == [
        ("reset-nodes", [ACCEPTED], "pending"), ("remove-agents", [ACCEPTED], "pending"),
        ("forget-nodes", [], "pending"), ("delete-cluster", [], "pending")]
    assert op["params"] == {"nodes": sorted([ACCEPTED, PENDING, STRAY]),
                            "unreachable": [PENDING], "orphans": [STRAY]}
    warning = deletion.warning(op)
    assert f"{PENDING} never had an accepted key" in warning
    assert f"{STRAY} had no kubesalt node record" in warning


def run_delete(store, layout, salt, tmp_path):
    op = deletion.start(store, layout, "edge", tmp_path, force=True, confirm=True,
                        spawn=False)
    deleted_keys = []
    stages = {"forget-nodes": lambda store_, op_: reset.forget_nodes(
                  store_, op_, layout, deleted_keys.extend),
              "delete-cluster": lambda store_, op_: deletion.delete_cluster(layout, store_,
                                                                            op_)}
    result = executor.execute(store, salt, op["id"], controller_stages=stages,
                              masters=[ACCEPTED])
    return op, result, deleted_keys


def test_a_delete_resets_forgets_and_deletes_the_cluster_last(edge_with_nodes, tmp_path):
    store, layout = edge_with_nodes
    salt = FakeSalt([ACCEPTED])
    op, result, deleted_keys = run_delete(store, layout, salt, tmp_path)
    assert (result["id"], result["state"]) == (op["id"], "done")
    assert [s["state"] for s in result["stages"]] == ["done"] * 4
    assert sorted(deleted_keys) == sorted([ACCEPTED, PENDING, STRAY])
    assert [sls for node, fun, (sls, *_), _ in salt.started if fun == "state.sls"] == \
        ["kubesalt.reset", "kubesalt.agent.remove"]
    assert store.list_clusters() == [] and store.list_nodes() == []
    assert cluster_secrets.load(layout, "edge") is None
    assert not (layout.installers_dir / "edge").exists()
    with pytest.raises(NotFound):
        store.operation(op["id"])


def test_a_failed_node_stage_keeps_the_cluster_and_the_same_command_resumes(
        edge_with_nodes, tmp_path):
    store, layout = edge_with_nodes
    broken = FakeSalt([ACCEPTED], lambda node, fun, arg: {
        "return": failed_state("kubeadm reset failed"), "retcode": 2}
        if fun == "state.sls" and arg[0] == "kubesalt.agent.remove"
        else {"return": OK if fun == "state.sls" else {}, "retcode": 0})
    _, result, deleted_keys = run_delete(store, layout, broken, tmp_path)
    assert (result["state"], result["failed_stage"]) == ("failed", "remove-agents")
    assert deleted_keys == [] and store.get_cluster("edge")["state"] == "FAILED"
    assert len(store.list_nodes("edge")) == 2
    field, message = refusal(lambda: provision.start(store, layout, "edge", dict, tmp_path,
                                                     spawn=False))
    assert "salt-run cluster.delete edge force=True confirm=True" in message
    salt = FakeSalt([ACCEPTED])
    op, result, deleted_keys = run_delete(store, layout, salt, tmp_path)
    assert op["stages"][0]["state"] == "skipped" and op["stages"][0]["error"] == plan.EARLIER
    assert [sls for node, fun, (sls, *_), _ in salt.started if fun == "state.sls"] == \
        ["kubesalt.agent.remove"]
    assert result["state"] == "done" and store.list_clusters() == []
