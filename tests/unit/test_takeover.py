"""Operations of another master whose lease lapsed are recorded as interrupted and resumed
here with the verb that resumes their kind (master/ops/takeover.py); this machine's own and
live ones are left alone."""

import time

import pytest

from kubesalt.master.ops import lease, takeover
from tests.unit.test_operations import make_store

ELSEWHERE = lease.Owner("0" * 32, "their-boot", 7, 1)


def test_a_lapsed_operation_of_another_master_is_interrupted_and_resumed(records_dir):
    store = make_store(records_dir)
    store.start_operation("op-1", ELSEWHERE.pid, ELSEWHERE, time.time() - 1)
    store.stage_started("op-1", "etcd")
    calls = []
    taken = takeover.take_over(store, lambda *call: calls.append(call) or "started")
    assert taken == [("op-1", "started")]
    assert calls == [("cluster.provision", ["c"], {})]
    op = store.operation("op-1")
    assert (op["state"], op["failed_stage"]) == ("failed", "etcd")
    assert "stopped renewing its lease" in op["error"]
    assert takeover.take_over(store, lambda *call: calls.append(call)) == []


def test_live_and_own_operations_are_left_alone(records_dir):
    store = make_store(records_dir)
    store.start_operation("op-1", ELSEWHERE.pid, ELSEWHERE, time.time() + 30)
    assert takeover.take_over(store, lambda *call: pytest.fail(f"resumed {call}")) == []
    mine = lease.owner()
    store.start_operation("op-1", mine.pid, mine, time.time() - 60)  # lease lapsed, but alive
    assert takeover.take_over(store, lambda *call: pytest.fail(f"resumed {call}")) == []
    assert store.operation("op-1")["state"] == "running"


@pytest.mark.parametrize(("kind", "params", "call"), [
    ("provision", {}, ("cluster.provision", ["c"], {})),
    ("upgrade", {"to": "1.30.10"}, ("cluster.upgrade", ["c"], {})),
    ("reset", {}, ("cluster.reset", ["c"], {"confirm": True})),
    ("delete", {}, ("cluster.delete", ["c"], {"force": True, "confirm": True})),
    ("remove-node", {"node": "n1", "drain": False}, ("node.remove", ["n1"], {"drain": False})),
])
def test_each_kind_is_resumed_by_its_verb(kind, params, call):
    assert takeover.resume_call({"cluster": "c", "kind": kind, "params": params}) == call
