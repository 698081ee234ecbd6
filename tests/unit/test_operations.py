import pytest

from kubesalt.master.ops import executor as operations
from kubesalt.master.ops import launch, plan, scheduler
from kubesalt.master.inventory.store import AlreadyExists, Store
from tests.specs import cluster_spec
from tests.unit.fake_salt import OK, FakeSalt, failed_state

def make_store(records_dir):
    store = Store(records_dir)
    store.create_cluster("c", {})
    stages = [{"name": "etcd", "title": "Start etcd", "nodes": ["m1", "m2"], "skip": ""},
              {"name": "ready", "title": "Mark READY", "nodes": [], "skip": ""}]
    store.create_operation("op-1", "c", "provision", stages, lambda pid: True)
    return store


def answer_with(failing=None, error="Command failed: exit 1"):
    def answer(node, fun, arg):
        if node == failing and fun == "state.sls":
            return {"return": failed_state(error), "retcode": 2}
        return {"return": OK if fun == "state.sls" else {}, "retcode": 0}
    return answer


def test_execute_records_failure_with_its_node_and_each_nodes_result(records_dir):
    store = make_store(records_dir)
    result = operations.execute(store, FakeSalt(["m1", "m2"], answer_with("m2")), "op-1",
                                masters=["m1", "m2"])
    assert (result["state"], result["failed_stage"], result["failed_node"]) == \
        ("failed", "etcd", "m2")
    etcd = result["stages"][0]
    assert etcd["state"] == "failed" and etcd["error"] == "broken: Command failed: exit 1"
    assert etcd["node_results"]["m1"]["state"] == "done"
    assert etcd["node_results"]["m2"]["state"] == "failed"
    assert etcd["started_at"] and etcd["finished_at"]
    assert store.get_cluster("c")["state"] == "FAILED"


def test_execute_records_a_crash_at_the_stage_it_reached(records_dir):
    store = make_store(records_dir)

    class Broken(FakeSalt):
        def events(self, wait):
            raise RuntimeError("master went away")

    result = operations.execute(store, Broken(["m1", "m2"]), "op-1")
    assert result["failed_stage"] == "etcd" and "master went away" in result["error"]
    assert result["stages"][0]["state"] == "failed"


def test_execute_success_marks_ready_and_fires_each_stage_change(records_dir):
    store = make_store(records_dir)
    fired = []
    result = operations.execute(store, FakeSalt(["m1", "m2"]), "op-1",
                                notify=lambda tag, data: fired.append(tag))
    assert result["state"] == "done" and store.get_cluster("c")["state"] == "READY"
    assert [s["state"] for s in result["stages"]] == ["done", "done"]
    assert fired == ["kubesalt/operation/op-1/stage/etcd/running",
                     "kubesalt/operation/op-1/stage/etcd/done"]


def test_a_cancel_asked_for_ends_the_operation_cancelled_and_resumable(records_dir):
    store = make_store(records_dir)
    salt = FakeSalt(["m1", "m2"], answer=lambda node, fun, arg: None if fun == "state.sls"
                    and node == "m2" else {"return": OK if fun == "state.sls" else {},
                                           "retcode": 0})
    original = salt.events

    def events(wait):
        if salt.running:
            assert store.request_cancel("op-1")
        return original(wait)

    salt.events = events
    result = operations.execute(store, salt, "op-1")
    assert (result["state"], result["failed_stage"]) == ("cancelled", "etcd")
    assert result["stages"][0]["node_results"]["m1"]["state"] == "done"
    assert result["stages"][0]["node_results"]["m2"]["state"] == "cancelled"
    assert salt.killed and salt.killed[0][0] == "m2"
    assert not store.request_cancel("op-1"), "an ended operation is not cancelled again"
    assert launch.last_failed(store, "c", "provision")["id"] == "op-1"
    assert launch.earlier_work(result) == {"etcd": ["m1"]}


def test_second_operation_refused_while_one_runs_and_allowed_after_its_process_died(records_dir):
    store = make_store(records_dir)
    store.start_operation("op-1", 4242)
    stages = [{"name": "etcd", "title": "t", "nodes": [], "skip": ""}]
    with pytest.raises(AlreadyExists):
        store.create_operation("op-2", "c", "provision", stages, lambda pid: True)
    store.create_operation("op-2", "c", "provision", stages, lambda pid: False)
    assert store.operation("op-1")["state"] == "failed"
    assert "interrupted" in store.operation("op-1")["error"]


def test_controller_stop_interrupts_the_running_operation_at_its_stage(records_dir):
    store = make_store(records_dir)
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


def test_a_stop_between_two_stages_fails_the_next_one(records_dir):
    # a stop after one stage ended and before the next started must still name where a
    # rerun resumes
    store = make_store(records_dir)
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
    assert scheduler.failed_state_comment(states) == (
        'Upgrade: Command "kubeadm upgrade node" run: error execution phase: no route to host')


def test_an_interrupted_stage_keeps_what_its_nodes_finished(records_dir):
    store = make_store(records_dir)
    store.start_operation("op-1", 4242)
    store.record_stage("op-1", "etcd", "running", 1.0, None, None,
                       {"m1": {"state": "done", "started_at": 1.0, "finished_at": 2.0},
                        "m2": {"state": "running", "started_at": 1.0}})
    operations.interrupt_running(store, lambda pid: False, lambda pid: None)
    op = store.operation("op-1")
    assert op["stages"][0]["node_results"]["m2"]["state"] == "failed"
    assert "controller stopped" in op["stages"][0]["node_results"]["m2"]["error"]
    assert launch.earlier_work(op) == {"etcd": ["m1"]}
    stages = plan.resolve(cluster_spec(storage="none"),
                          [{"id": "m1", "config": {"roles": ["master"]}},
                           {"id": "m2", "config": {"roles": ["master"]}}],
                          earlier={"prechecks": ["m1", "m2"], "os": ["m1"]})
    by_name = {s["name"]: s for s in stages}
    assert by_name["prechecks"]["skip"] == plan.EARLIER
    assert by_name["os"]["skip"] == "" and by_name["os"]["done_nodes"] == ["m1"]
