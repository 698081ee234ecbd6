"""What the web console reads besides the runners it shares with salt-run: the cluster
options and their defaults, upgrade targets, the artifact store per release, node counts per
cluster, and node.logs' bounds on what a node answers."""

import json

import pytest

from kubesalt.master.errors import Refused
from kubesalt.master.inventory import agent_logs, artifacts, choices, clusters, nodes
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.inventory import spec as spec_mod
from kubesalt.master.ops import upgrade
from kubesalt.master.verbs import saltcalls
from tests.unit.test_context import CURRENT, NEXT, ready_cluster

MATRIX = matrix_mod.default()


def test_options_are_what_a_cluster_created_without_options_gets():
    offered = choices.options(MATRIX)
    built = spec_mod.build("x", MATRIX).to_dict()
    assert offered["defaults"] == {k: v for k, v in built.items() if k != "name"}
    assert set(offered["defaults"]) == {f.name for f in
                                        spec_mod.dataclasses.fields(spec_mod.ClusterSpec)} - \
        {"name"}
    assert offered["k8s_versions"] == MATRIX.k8s_versions
    assert offered["defaults"]["k8s_version"] == offered["default_k8s_version"]
    assert offered["defaults"]["os"] in offered["os"]
    assert offered["cni"] == ["calico", "cilium"]
    assert {t["type"] for t in offered["types"]} == {
        "converged-single-master", "dedicated-single-master", "converged-multi-master",
        "dedicated-multi-master"}
    multi = next(t for t in offered["types"] if t["type"] == "dedicated-multi-master")
    assert multi["nodes_required"]["total"] == 4 and multi["description"]
    assert offered["updatable"] == list(spec_mod.UPDATABLE)
    json.dumps(offered)  # the API answers it as JSON


def test_upgrade_targets_follow_the_rules_and_the_store(tmp_path):
    store, layout = ready_cluster(tmp_path, {"m1": ["master"]})
    spec = store.cluster("c").spec
    found = upgrade.targets(MATRIX, spec, layout.artifacts_dir)
    assert found["current"] == CURRENT
    by_version = {t["version"]: t for t in found["targets"]}
    assert CURRENT not in by_version and "1.28.15" not in by_version
    assert by_version[NEXT]["allowed"] and by_version[NEXT]["missing"] == []
    later = by_version["1.31.6"]
    assert not later["allowed"] and "upgrade to 1.30.10 first" in later["reason"]
    assert later["missing"] and later["sync_command"] == "salt-run artifacts.sync 1.31.6"
    for target in found["targets"]:  # allowed here is exactly what cluster.upgrade accepts
        try:
            upgrade.check_target(MATRIX, CURRENT, target["version"])
            assert target["allowed"]
        except Refused:
            assert not target["allowed"]


def test_artifact_overview(tmp_path):
    store_dir = tmp_path / "artifacts"
    store_dir.mkdir()
    wanted = artifacts.wanted(MATRIX, NEXT)
    some = sorted(wanted.values())[:3]
    (store_dir / artifacts.INDEX).write_text(json.dumps({p: "0" * 64 for p in some}))
    versions = {v["version"]: v for v in artifacts.overview(store_dir, MATRIX)["versions"]}
    assert list(versions) == MATRIX.k8s_versions
    assert versions[NEXT]["present"] == some
    assert set(versions[NEXT]["missing"]) == set(wanted.values()) - set(some)
    assert not versions[NEXT]["complete"]
    assert versions[NEXT]["sync_command"] == f"salt-run artifacts.sync {NEXT}"
    with pytest.raises(Refused):
        artifacts.check_arch("sparc")


def test_node_counts_per_cluster(tmp_path):
    store, layout = ready_cluster(tmp_path, {"m1": ["master"], "w1": ["worker"]})
    store.enroll_node("w2", "c", "f" * 64, "serial-w2", "10.0.0.9")  # enrolled, no key yet
    clusters.create(store, "empty")
    counts = nodes.counts(store, layout.pki_dir)
    assert counts == {"c": {"total": 3, "ready": 2}}
    listed = {c["name"]: c["nodes"] for c in clusters.list_(store, counts=counts)}
    assert listed == {"c": {"total": 3, "ready": 2}, "empty": {"total": 0, "ready": 0}}
    assert clusters.show(store, "c", counts=counts)["nodes"] == {"total": 3, "ready": 2}
    assert "nodes" not in clusters.show(store, "c")


def test_node_logs_refuse_what_runs_nothing_from_the_controller(tmp_path):
    store, layout = ready_cluster(tmp_path, {"m1": ["master"]})
    store.enroll_node("w2", "c", "f" * 64, "serial-w2", "10.0.0.9")
    assert agent_logs.check_readable(store, layout.pki_dir, "m1")["status"] == "READY"
    with pytest.raises(Refused, match="ENROLLED"):
        agent_logs.check_readable(store, layout.pki_dir, "w2")
    with pytest.raises(Refused, match="no node"):
        agent_logs.check_readable(store, layout.pki_dir, "nope")
    assert agent_logs.check_lines(1000) == 1000
    with pytest.raises(Refused) as exc:
        agent_logs.check_lines(1001)
    assert exc.value.errors[0]["field"] == "lines"


def test_node_logs_bound_what_the_node_answers():
    lines = "".join(f"line {i}\n" for i in range(5000))
    got = agent_logs.from_answer("n1", {"path": "/p", "log": lines, "truncated": False}, 10)
    assert got["lines"] == 10 and got["truncated"] and got["log"].startswith("line 4990\n")
    huge = ("z" * 1000 + "\n") * 200  # a node that ignores max_bytes
    got = agent_logs.from_answer("n1", {"path": "/p", "log": huge, "truncated": False}, 1000)
    assert len(got["log"].encode()) <= agent_logs.MAX_BYTES and got["truncated"]
    assert got["log"].startswith("z") and got["log"].endswith("\n")
    assert got["lines"] == got["log"].count("\n")
    with pytest.raises(Refused, match="did not answer"):
        agent_logs.from_answer("n1", None, 10)
    with pytest.raises(Refused, match="cannot read /p"):
        agent_logs.from_answer("n1", {"path": "/p", "error": "cannot read /p"}, 10)
    with pytest.raises(Refused, match="is not available"):
        agent_logs.from_answer("n1", saltcalls.log_answer(
            "'kubesalt_agent.log_tail' is not available."), 10)
    with pytest.raises(Refused, match="ValueError: boom"):  # a traceback: its last line
        agent_logs.from_answer("n1", saltcalls.log_answer(
            "The minion function caused an exception: Traceback (most recent call last):\n"
            "  File x\nValueError: boom"), 10)
    with pytest.raises(Refused, match="answered no log"):
        agent_logs.from_answer("n1", {"path": "/p"}, 10)
