"""Deleting a cluster and forgetting keys, without a master: what cluster.delete refuses and
changes, the operation that deletes a cluster with its nodes, and what a follower of an
operation answers when the operation's record goes with its cluster."""

import pytest

from kubesalt.master.ops import status
from kubesalt.master.inventory.store import Store

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
    with pytest.raises(status.Refused) as refused:
        status.cluster_status(store, "c")
    assert refused.value.errors[0]["field"] == "name"
