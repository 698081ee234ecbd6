from kubesalt.master.ops import plan
from tests.specs import cluster_spec

ROOK_CEPH = cluster_spec(storage="rook-ceph")


def node(node_id, *roles):
    return {"id": node_id, "config": {"roles": list(roles)}}


NODES = [node("m1", "master"), node("m2", "master"), node("m3", "master"),
         node("w1", "worker", "storage")]


def by_name(stages):
    return {s["name"]: s for s in stages}


def test_order_matches_design():
    assert plan.STAGE_NAMES == (
        "prechecks", "os", "binaries", "containerd", "consul", "etcd", "control-plane-init",
        "control-plane-join", "worker-join", "cni", "taints", "cert-manager",
        "storage", "wait-for-pods", "ready")


def test_targets_for_dedicated_multi():
    stages = by_name(plan.resolve(ROOK_CEPH, NODES))
    assert stages["etcd"]["nodes"] == ["m1", "m2", "m3"]
    assert stages["control-plane-init"]["nodes"] == ["m1"]
    assert stages["control-plane-join"]["nodes"] == ["m2", "m3"]
    assert stages["control-plane-join"]["parallel"] is False
    assert stages["worker-join"]["nodes"] == ["w1"]
    assert stages["binaries"]["nodes"] == ["m1", "m2", "m3", "w1"]
    assert not any(s["skip"] for s in stages.values())


def test_single_master_skips_join_and_storage_without_blueprint_storage():
    stages = by_name(plan.resolve(cluster_spec(storage="none"), [node("m1", "master", "worker")]))
    assert stages["control-plane-join"]["skip"] == "no node has this role"
    assert stages["worker-join"]["skip"] == "no node has this role"
    assert stages["storage"]["skip"] == "the blueprint has no storage"
    assert stages["ready"]["skip"] == ""


def test_resume_skips_what_the_failed_run_finished_node_by_node():
    everyone = ["m1", "m2", "m3", "w1"]
    earlier = {"prechecks": everyone, "os": everyone, "binaries": ["m1", "m2", "w1"],
               "etcd": ["m1"]}
    stages = by_name(plan.resolve(ROOK_CEPH, NODES, earlier=earlier))
    assert [n for n, s in stages.items() if s["skip"] == plan.EARLIER] == ["prechecks", "os"]
    assert stages["binaries"]["skip"] == "" and stages["binaries"]["done_nodes"] == \
        ["m1", "m2", "w1"]
    assert stages["etcd"]["done_nodes"] == ["m1"]
    assert stages["containerd"]["done_nodes"] == []


def test_resuming_with_stages_the_plan_no_longer_has_runs_every_stage():
    # A provision recorded as failed after "operator" (a stage since removed) skips nothing
    # for it.
    stages = plan.resolve(ROOK_CEPH, NODES, earlier={"operator": ["m1"]})
    assert [s["name"] for s in stages if s["skip"] == plan.EARLIER] == []


def test_every_stage_comes_after_stages_of_its_own_plan():
    for kind, stages in plan.PLANS.items():
        names = [s.name for s in stages]
        for stage in stages:
            for entry in stage.after or ():
                name, _, scope = entry.partition("/")
                assert names.index(name) < names.index(stage.name), (kind, stage.name, entry)
                assert scope in ("", "node", "masters"), (kind, stage.name, entry)


def test_adding_nodes_touches_only_them():
    stages = by_name(plan.resolve(ROOK_CEPH, NODES + [node("w2", "worker")],
                                  only={"w2"}))
    assert stages["binaries"]["nodes"] == ["w2"]
    assert stages["worker-join"]["nodes"] == ["w2"]
    assert stages["etcd"]["skip"] == "the cluster has it already"
    assert stages["cni"]["skip"] == "the cluster has it already"
    assert stages["wait-for-pods"]["skip"] == ""
