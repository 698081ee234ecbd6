import pytest

from kubesalt.master.ops import executor as operations
from kubesalt.master.ops import plan
from kubesalt.master.inventory.store import AlreadyExists, Store
from tests.specs import cluster_spec

FAILED_RETURN = {
    "retcode": 1,
    "data": {"ctl_master": {
        "salt_|-Start stage etcd_|-operation.stage_started_|-runner": {
            "result": True, "__run_num__": 0, "changes": {}},
        "salt_|-Run stage etcd_|-Run stage etcd_|-state": {
            "result": False, "__run_num__": 1, "comment": "Run failed on minions: m2",
            "changes": {"ret": {
                "m1": {"file_|-etcd config_|-/etc/etcd.conf_|-managed": {
                    "result": True, "__run_num__": 0, "__id__": "etcd config"}},
                "m2": {"cmd_|-Start etcd_|-systemctl start_|-run": {
                    "result": False, "__run_num__": 3, "__id__": "Start etcd",
                    "comment": "Command failed: exit 1"}}}}},
        "salt_|-Finish stage etcd_|-operation.stage_finished_|-runner": {
            "result": False, "__run_num__": 2, "comment": "One or more requisite failed"},
    }},
}


def test_failures_name_stage_node_and_comment():
    found = operations.failures(FAILED_RETURN)
    assert ("etcd", "m2", "Start etcd: Command failed: exit 1") in found


def test_orchestration_pillar_leaves_out_skipped_stages():
    op = {"id": "op-1", "cluster": "c", "kind": "provision", "stages": [
        {"name": "prechecks", "title": "t", "nodes": ["a"], "state": "skipped"},
        {"name": "etcd", "title": "t", "nodes": ["a"], "state": "pending"}]}
    stages = operations.orchestration_pillar(op)["kubesalt_operation"]["stages"]
    assert [s["name"] for s in stages] == ["etcd"]


def test_orchestration_pillar_from_a_stored_operation_applies_each_stage_sls(tmp_path):
    """The store records stage names and nodes only; what each stage applies comes from the
    plan, so an operation read back from the store still runs its states."""
    store = Store(tmp_path)
    store.create_cluster("c", {})
    nodes = [{"id": "m1", "config": {"roles": ["master", "worker"]}}]
    store.create_operation("op-2", "c", "provision",
                           plan.resolve(cluster_spec(storage="none"), nodes), lambda pid: True)
    stages = operations.orchestration_pillar(store.operation("op-2"))["kubesalt_operation"][
        "stages"]
    by_name = {s["name"]: s for s in stages}
    assert by_name["etcd"]["sls"] == "kubesalt.etcd"
    assert all(s["sls"] for s in stages if s["name"] != "ready")
    assert by_name["etcd"]["nodes"] == ["m1"]


def make_store(tmp_path):
    store = Store(tmp_path)
    store.create_cluster("c", {})
    stages = [{"name": "etcd", "title": "Start etcd", "nodes": ["m1", "m2"], "skip": ""},
              {"name": "ready", "title": "Mark READY", "nodes": [], "skip": ""}]
    store.create_operation("op-1", "c", "provision", stages, lambda pid: True)
    return store


def run(store, orchestration):
    def orchestrate(mods, pillar):
        store.stage_started("op-1", "etcd")  # what the orchestration's first step records
        return orchestration(mods, pillar)
    return operations.execute(store, orchestrate, "op-1")


def test_execute_records_failure(tmp_path):
    store = make_store(tmp_path)
    result = run(store, lambda mods, pillar: FAILED_RETURN)
    assert (result["state"], result["failed_stage"], result["failed_node"]) == \
        ("failed", "etcd", "m2")
    assert result["stages"][0]["state"] == "failed"
    assert "Command failed" in result["stages"][0]["error"]
    assert store.get_cluster("c")["state"] == "FAILED"


def test_execute_records_crash_of_orchestration(tmp_path):
    store = make_store(tmp_path)

    def boom(mods, pillar):
        raise RuntimeError("master went away")

    result = run(store, boom)
    assert result["failed_stage"] == "etcd" and "master went away" in result["error"]


def test_execute_success_marks_ready(tmp_path):
    store = make_store(tmp_path)
    result = run(store, lambda mods, pillar: {"retcode": 0, "data": {}})
    assert result["state"] == "done" and store.get_cluster("c")["state"] == "READY"
    assert [s["state"] for s in result["stages"]] == ["running", "done"]


def test_second_operation_refused_while_one_runs_and_allowed_after_its_process_died(tmp_path):
    store = make_store(tmp_path)
    store.start_operation("op-1", 4242)
    stages = [{"name": "etcd", "title": "t", "nodes": [], "skip": ""}]
    with pytest.raises(AlreadyExists):
        store.create_operation("op-2", "c", "provision", stages, lambda pid: True)
    store.create_operation("op-2", "c", "provision", stages, lambda pid: False)
    assert store.operation("op-1")["state"] == "failed"
    assert "interrupted" in store.operation("op-1")["error"]


def test_controller_stop_interrupts_the_running_operation_at_its_stage(tmp_path):
    store = make_store(tmp_path)
    store.start_operation("op-1", 4242)
    store.set_cluster_state("c", "PROVISIONING")
    store.stage_started("op-1", "etcd")
    killed = []
    assert operations.interrupt_running(store, lambda pid: True, killed.append) == ["op-1"]
    assert killed == [4242]
    op = store.operation("op-1")
    assert (op["state"], op["failed_stage"]) == ("failed", "etcd")
    assert "controller stopped" in op["error"]
    assert "controller stopped" in op["stages"][0]["error"]
    assert store.get_cluster("c")["state"] == "FAILED"
    # nothing left to interrupt; a finished operation is never touched
    assert operations.interrupt_running(store, lambda pid: True, killed.append) == []
    assert killed == [4242]


def test_a_stop_between_two_stages_fails_the_next_one(tmp_path):
    # the orchestration records a stage's end and the next one's start in two steps; a stop
    # in between must still name where a rerun resumes
    store = make_store(tmp_path)
    store.start_operation("op-1", 4242)
    store.stage_started("op-1", "etcd")
    store.stage_finished("op-1", "etcd", True)
    operations.interrupt_running(store, lambda pid: False, lambda pid: None)
    op = store.operation("op-1")
    assert (op["state"], op["failed_stage"]) == ("failed", "ready")
    assert [s["state"] for s in op["stages"]] == ["done", "failed"]
    assert "controller stopped" in op["stages"][1]["error"]


def test_a_failed_command_reports_its_stderr():
    states = {"cmd_|-Upgrade_|-kubeadm upgrade node_|-run": {
        "result": False, "__run_num__": 0, "__id__": "Upgrade",
        "comment": 'Command "kubeadm upgrade node" run',
        "changes": {"retcode": 1, "stdout": "[upgrade] reading",
                    "stderr": "warning\nerror execution phase: no route to host"}}}
    assert operations._failed_comment(states) == (
        'Upgrade: Command "kubeadm upgrade node" run: error execution phase: no route to host')
