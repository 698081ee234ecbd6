"""Day-2 operations without a master: upgrade version rules, removal guards, reset gates, the
plans they resolve to, and the executor's controller stages."""

import pytest

from kubesalt.master.inventory import clusters
from kubesalt.master import layout as layout_mod
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.ops import executor, lanes
from kubesalt.master.ops import plan
from kubesalt.master.ops import removal
from kubesalt.master.ops import reset
from kubesalt.master.ops import upgrade
from kubesalt.master.errors import Refused
from kubesalt.master.inventory.store import Store
from tests.specs import cluster_spec
from tests.unit.fake_salt import FakeSalt, failed_state

MATRIX = matrix_mod.default()
SPEC = cluster_spec()


def message(exc_info):
    return " ".join(e["message"] for e in exc_info.value.errors)


@pytest.mark.parametrize(("current", "requested", "words"), [
    ("1.28.15", "1.30", "skips a minor version"),
    ("1.28.15", "1.31.6", "upgrade to 1.29.14 first"),
    ("1.30.10", "1.29", "downgrades are not supported"),
    ("1.30.10", "1.30", "already runs"),
    ("1.30.10", "1.99", "not in the version matrix"),
    ("1.30.10", None, "name the version"),
])
def test_upgrade_refuses_skips_downgrades_and_unknown_versions(current, requested, words):
    with pytest.raises(Refused) as refused:
        upgrade.check_target(MATRIX, current, requested)
    assert refused.value.errors[0]["field"] == "k8s_version"
    assert words in message(refused)


def test_upgrade_takes_the_next_minor_by_minor_or_release():
    assert upgrade.check_target(MATRIX, "1.29.14", "1.30") == "1.30.10"
    assert upgrade.check_target(MATRIX, "1.29.14", "v1.30.10") == "1.30.10"


def view(node_id, *roles, status="READY"):
    return {"id": node_id, "status": status, "config": {"roles": list(roles)}}


HA = [view("m1", "master"), view("m2", "master"), view("m3", "master"), view("w1", "worker")]


def test_a_master_of_three_may_leave_but_not_a_second():
    spec = cluster_spec(dedicated_master=True)
    assert removal.check(spec, HA, "m3")["id"] == "m3"
    two_left = [n for n in HA if n["id"] != "m3"]
    with pytest.raises(Refused) as refused:
        removal.check(spec, two_left, "m2")
    assert "below quorum (2)" in message(refused) and "m2" in message(refused)


def test_the_only_master_and_the_last_dedicated_worker_stay():
    spec = cluster_spec(dedicated_master=True)
    single = [view("m1", "master"), view("w1", "worker")]
    with pytest.raises(Refused, match="only master"):
        removal.check(spec, single, "m1")
    with pytest.raises(Refused, match="last worker"):
        removal.check(spec, single, "w1")
    converged = [view("m1", "master", "worker"), view("w1", "worker")]
    assert removal.check(cluster_spec(dedicated_master=False), converged, "w1")


def test_removal_plan_drains_from_a_master_that_stays():
    stays = [{"id": n["id"], "config": n["config"]} for n in HA if n["id"] != "m1"]
    stages = {s["name"]: s for s in plan.resolve(
        SPEC, stays, kind="remove-node", removed={"id": "m1", "config": {"roles": ["master"]}})}
    assert stages["drain"]["nodes"] == ["m2"] and stages["etcd-member"]["nodes"] == ["m2"]
    assert stages["etcd-member"]["skip"] == ""
    assert stages["reset-node"]["nodes"] == ["m1"] and stages["remove-agent"]["nodes"] == ["m1"]
    worker = {s["name"]: s for s in plan.resolve(
        SPEC, stays, kind="remove-node", removed={"id": "w1", "config": {"roles": ["worker"]}})}
    assert worker["etcd-member"]["skip"] == "the node is not a master"


def test_upgrade_plan_follows_kubeadm_order():
    nodes = [{"id": n["id"], "config": n["config"]} for n in HA]
    stages = {s["name"]: s for s in plan.resolve(SPEC, nodes, kind="upgrade")}
    assert stages["upgrade-first-master"]["nodes"] == ["m1"]
    assert stages["upgrade-other-masters"]["nodes"] == ["m2", "m3"]
    assert stages["upgrade-workers"]["nodes"] == ["w1"]
    assert all(stages[s]["drain"] and not stages[s]["parallel"]
               for s in ("upgrade-first-master", "upgrade-other-masters", "upgrade-workers"))


def test_an_upgrade_read_back_from_the_store_drains_from_the_first_master(tmp_path):
    store = Store(tmp_path)
    store.create_cluster("c", {})
    nodes = [{"id": n["id"], "config": n["config"]} for n in HA]
    store.create_operation("op-u", "c", "upgrade", plan.resolve(SPEC, nodes, kind="upgrade"),
                           lambda pid: True, params={"from": "1.29.14", "to": "1.30.10"})
    tasks = lanes.build(store.operation("op-u"), ["m1", "m2", "m3"])
    assert lanes.first_master(store.operation("op-u")) == "m1"
    drain, upgrade, uncordon = tasks[("upgrade-workers", "w1")].steps
    assert (drain.node, drain.sls, uncordon.node, uncordon.sls) == \
        ("m1", lanes.DRAIN_SLS, "m1", lanes.UNCORDON_SLS)
    assert upgrade == lanes.Step("w1", "kubesalt.upgrade",
                                 {"from": "1.29.14", "to": "1.30.10", "node": "w1"})
    assert tasks[("upgrade-other-masters", "m3")].needs >= {("upgrade-other-masters", "m2")}
    assert "ready" not in {stage for stage, _ in tasks}, "the controller's own stage"


def cluster_with_nodes(tmp_path, reset_enabled):
    layout = layout_mod.Layout.for_root(tmp_path / "root")
    store = Store(layout.state_dir)
    clusters.create(store, "c", reset_enabled=reset_enabled)
    store.enroll_node("n1", "c", "sha", "serial", "10.0.0.1")
    return store, layout


@pytest.mark.parametrize(("enabled", "confirm", "field", "words"), [
    (False, True, "reset_enabled", "salt-run cluster.update c reset_enabled=True"),
    (True, False, "confirm", "salt-run cluster.reset c confirm=True"),
])
def test_reset_needs_the_flag_and_a_confirmation_and_changes_nothing_without(
        tmp_path, enabled, confirm, field, words):
    store, layout = cluster_with_nodes(tmp_path, enabled)
    with pytest.raises(Refused) as refused:
        reset.start(store, layout, "c", tmp_path, confirm=confirm, spawn=False)
    assert refused.value.errors[0]["field"] == field and words in message(refused)
    assert store.operations("c") == [] and [n["id"] for n in store.list_nodes()] == ["n1"]


def test_reset_forgets_nodes_revokes_installers_and_keeps_the_cluster(tmp_path):
    store, layout = cluster_with_nodes(tmp_path, True)
    store.add_installer("c", "s1", 0, 2**40)
    store.create_operation("op-r", "c", "reset", plan.resolve(SPEC, [], kind="reset"),
                           lambda pid: True, params={"nodes": ["n1"]})
    deleted = []

    def forget(store_, op):
        reset.forget_nodes(store_, op, layout, deleted.extend)

    result = executor.execute(store, FakeSalt([]), "op-r",
                              controller_stages={"forget-nodes": forget})
    assert result["state"] == "done", result
    assert deleted == ["n1"] and store.list_nodes("c") == []
    assert store.valid_installer_serials("c") == set()
    assert store.get_cluster("c")["state"] == "CREATED"
    assert store.get_cluster("c")["spec"]["reset_enabled"] is True


def test_a_failing_controller_stage_fails_the_operation_there(tmp_path):
    store, _ = cluster_with_nodes(tmp_path, True)
    store.create_operation("op-r", "c", "reset", plan.resolve(SPEC, [], kind="reset"),
                           lambda pid: True, params={"nodes": ["n1"]})

    def broken(store_, op):
        raise OSError("key store unreadable")

    result = executor.execute(store, FakeSalt([]), "op-r",
                              controller_stages={"forget-nodes": broken})
    assert (result["state"], result["failed_stage"]) == ("failed", "forget-nodes")
    assert "key store unreadable" in result["error"]
    assert store.get_cluster("c")["state"] == "FAILED"


def test_a_removal_marks_only_the_removed_node(tmp_path):
    store, layout = cluster_with_nodes(tmp_path, False)
    store.enroll_node("n2", "c", "sha", "serial", "10.0.0.2")
    stays = [{"id": "n1", "config": {"roles": ["master"]}}]
    store.create_operation("op-x", "c", "remove-node", plan.resolve(
        SPEC, stays, kind="remove-node", removed={"id": "n2", "config": {"roles": ["worker"]}}),
        lambda pid: True, params={"node": "n2", "drain": True})
    salt = FakeSalt(["n1", "n2"], lambda node, fun, arg: {
        "return": failed_state("drain failed"), "retcode": 2} if fun == "state.sls" else
        {"return": {}, "retcode": 0})
    result = executor.execute(store, salt, "op-x")
    assert (result["failed_stage"], result["failed_node"]) == ("drain", "n1")
    assert result["error"] == "broken: drain failed"
    phases = {n["id"]: n["phase"] for n in store.list_nodes("c")}
    assert phases == {"n1": None, "n2": "FAILED"}
    assert store.get_cluster("c")["state"] == "CREATED", "a removal leaves the cluster's state"
