"""What an operator reads from salt-run by default, run through the real salt-run and its
outputter: an operation as a stage table, progress as one line per stage start and end,
`--out=json` with the full data; and `cluster.cancel`'s answers. The operations here are
recorded in the controller's store with a stand-in executor process (one that never
progresses), as test_daemon_recovery does; the real executor is followed in the lab tests."""

import re
import subprocess
import threading

import pytest

from kubesalt.master.inventory.store import Store

from ..waiting import wait_for
from .controller import BIN, _env

pytestmark = pytest.mark.integration

LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] (\S+) +(running|done|failed|cancelled) +"
                  r"(\d+\.\ds)? +(\d+ nodes?|controller)(: .*)?$")
STAGES = [{"name": "etcd", "title": "Start etcd", "nodes": ["m1", "m2"], "skip": ""},
          {"name": "control-plane-init", "title": "Init", "nodes": ["m1"], "skip": ""},
          {"name": "ready", "title": "Mark READY", "nodes": [], "skip": ""}]


@pytest.fixture
def executor():
    """A process standing in for an operation's executor: alive, never progressing."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc.pid
    proc.kill()
    proc.wait()


def store_of(controller):
    return Store(controller.root / "var" / "lib" / "kubesalt")


def salt_run(controller, *args, timeout=120):
    """salt-run without --out: what an operator sees."""
    return subprocess.run([str(BIN / "salt-run"), "-c", str(controller.conf_dir), *args],
                          capture_output=True, text=True, timeout=timeout, env=_env(),
                          stdin=subprocess.DEVNULL)


def operation(controller, cluster, executor):
    store = store_of(controller)
    controller.run_ok("cluster.create", cluster)
    store.create_operation(f"op-{cluster}", cluster, "provision", STAGES, lambda pid: True)
    store.start_operation(f"op-{cluster}", executor)
    return store, f"op-{cluster}"


def test_cluster_status_prints_the_stage_table_and_json_keeps_the_data(controller, executor):
    store, op_id = operation(controller, "out1", executor)
    store.record_stage(op_id, "etcd", "failed", 100.0, 104.5, "broken: exit 1",
                       {"m1": {"state": "done", "started_at": 100.0, "finished_at": 103.0},
                        "m2": {"state": "failed", "started_at": 100.0, "finished_at": 104.5,
                               "error": "broken: exit 1"}})
    store.finish_operation(op_id, False, error="broken: exit 1", failed_stage="etcd",
                           failed_node="m2")
    proc = salt_run(controller, "cluster.status", "out1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "cluster out1: CREATED"
    # the health on top: a cluster with no node to check yet
    assert re.fullmatch(r"health: unknown since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[1])
    assert lines[2].startswith(f"operation {op_id} (provision): failed at etcd on m2")
    assert lines[3].split() == ["STAGE", "STATE", "TIME", "NODES"]
    assert lines[4].split() == ["etcd", "failed", "4.5s", "2", "nodes"]
    assert lines[5].strip() == "m2: failed: broken: exit 1"
    assert [line.split()[:2] for line in lines[6:]] == [["control-plane-init", "pending"],
                                                        ["ready", "pending"]]
    assert "Traceback" not in proc.stdout + proc.stderr
    data = controller.run_ok("cluster.status", "out1")
    etcd = data["operation"]["stages"][0]
    assert etcd["per_node"]["m1"]["duration_s"] == 3.0 and etcd["per_node"]["m2"]["error"]


def test_following_an_operation_prints_one_line_per_stage_start_and_end(controller, executor):
    store, op_id = operation(controller, "out2", executor)
    follower = subprocess.Popen(
        [str(BIN / "salt-run"), "-c", str(controller.conf_dir), "cluster.cancel", "out2",
         "wait=True", "timeout=60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=_env(), stdin=subprocess.DEVNULL)

    def play():
        # what the executor records as it goes, and its answer to the cancel
        wait_for(lambda: store.cancel_requested(op_id), 60, "the cancel request")
        store.record_stage(op_id, "etcd", "running", 100.0, None, None,
                           {"m1": {"state": "running", "started_at": 100.0}})
        store.record_stage(op_id, "etcd", "cancelled", 100.0, 102.0,
                           "cancelled by the operator",
                           {"m1": {"state": "cancelled", "started_at": 100.0,
                                   "finished_at": 102.0, "error": "cancelled by the operator"}})
        store.finish_operation(op_id, False, error="cancelled", failed_stage="etcd",
                               state="cancelled")

    player = threading.Thread(target=play)
    player.start()
    out, err = follower.communicate(timeout=120)
    player.join()
    assert follower.returncode == 0, (out, err)
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert progress, out
    assert all(LINE.match(line) for line in progress), progress
    assert progress[-1].split()[1:3] == ["etcd", "cancelled"]
    assert progress[-1].endswith("2 nodes: cancelled by the operator")
    assert "operation op-out2 (provision): cancelled at etcd" in out
    assert "_stamp" not in out and "suffix" not in out, "no raw event blocks"


def test_cancel_is_refused_without_a_running_operation_and_changes_nothing(controller):
    code, out = controller.run("cluster.cancel", "nope")
    assert code != 0 and out["errors"][0]["field"] == "name"
    assert "no cluster named 'nope'" in out["errors"][0]["message"]
    controller.run_ok("cluster.create", "idle1")
    code, out = controller.run("cluster.cancel", "idle1")
    assert code != 0 and "has no running operation" in out["errors"][0]["message"]
    assert store_of(controller).operations("idle1") == []


def test_cancel_records_the_request_for_the_running_operation_only(controller, executor):
    store, op_id = operation(controller, "out3", executor)
    _, other = operation(controller, "out4", executor)
    answer = controller.run_ok("cluster.cancel", "out3")
    assert answer == {"operation": op_id, "cluster": "out3", "kind": "provision",
                      "state": "cancelling"}
    assert store.cancel_requested(op_id) and not store.cancel_requested(other)
