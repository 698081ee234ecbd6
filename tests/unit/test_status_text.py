"""What salt-run prints by default for operations (kubesalt's outputter)."""

import re

from kubesalt.master.ops import status, status_text

LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] (\S+) +(running|done|failed|cancelled) +"
                  r"(\d+\.\ds)? +(\d+ nodes?|controller)(: .*)?$")


def op_record(state="failed"):
    return {"id": "op-1", "cluster": "c", "kind": "provision", "state": state, "params": {},
            "started_at": 100.0, "finished_at": 160.0, "failed_stage": "worker-join",
            "failed_node": "w1", "error": "broken: no route",
            "stages": [
                {"name": "prechecks", "title": "t", "state": "done", "nodes": ["m1", "w1"],
                 "started_at": 100.0, "finished_at": 102.5, "error": None,
                 "node_results": {"m1": {"state": "done", "started_at": 100.0,
                                         "finished_at": 101.0}}},
                {"name": "worker-join", "title": "t", "state": "failed", "nodes": ["w1"],
                 "started_at": 110.0, "finished_at": 118.25, "error": "broken: no route",
                 "node_results": {"w1": {"state": "failed", "started_at": 110.0,
                                         "finished_at": 118.25, "error": "broken: no route"}}},
                {"name": "storage", "title": "t", "state": "skipped", "nodes": [],
                 "started_at": None, "finished_at": None, "error": "the blueprint has no storage",
                 "node_results": None}]}


def test_progress_lines_have_one_format():
    for stage in op_record()["stages"][:2]:
        line = status.progress_line(stage)
        assert LINE.match(line), line
    assert status.progress_line(op_record()["stages"][1]).endswith("1 node: broken: no route")
    running = dict(op_record()["stages"][0], state="running", finished_at=None)
    assert LINE.match(status.progress_line(running))


def test_an_operation_is_a_stage_table_naming_the_failed_node():
    text = status_text.render(status.status_view(op_record()))
    lines = text.splitlines()
    assert lines[0].startswith("operation op-1 (provision): failed at worker-join on w1, 60.0 s")
    assert lines[1].split() == ["STAGE", "STATE", "TIME", "NODES"]
    assert lines[2].split() == ["prechecks", "done", "2.5s", "2", "nodes"]
    assert lines[3].split()[:3] == ["worker-join", "failed", "8.2s"]
    assert lines[4].strip() == "w1: failed: broken: no route"
    assert lines[5].split()[:2] == ["storage", "skipped"]
    assert len(lines) == 6


def test_a_cluster_status_puts_the_state_over_the_table_and_history_one_line_each():
    view = status.status_view(op_record())
    text = status_text.render({"cluster": "c", "state": "FAILED", "operation": view})
    assert text.splitlines()[0] == "cluster c: FAILED"
    history = status_text.render({"cluster": "c", "state": "FAILED",
                                  "operations": [view, view]})
    assert len(history.splitlines()) == 1 + 1 + len(text.splitlines()) - 1
    assert status_text.render({"cluster": "c", "state": "CREATED", "operation": None}) == \
        "cluster c: CREATED\nno operation has run on this cluster yet"


def test_a_cluster_status_shows_the_health_under_the_state():
    health = {"state": "degraded", "since": 1_800_000_000.0, "problems": [
        {"node": "m1", "state": "disconnected", "since": 1_800_000_000.0,
         "reason": "its agent did not answer the controller"}]}
    lines = status_text.render({"cluster": "c", "state": "READY", "health": health,
                                "operation": status.status_view(op_record("done"))}
                               ).splitlines()
    assert lines[0] == "cluster c: READY"
    assert re.fullmatch(r"health: degraded since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lines[1])
    assert re.fullmatch(r"  m1: disconnected since .*: its agent did not answer the controller",
                        lines[2])
    assert lines[3].startswith("operation op-1 (provision)")


def test_progress_events_print_their_message_and_other_data_is_left_to_salt():
    assert status_text.render({"suffix": "progress", "event": {"message": "[1] x", "_stamp":
                                                               "t"}}) == "[1] x"
    assert status_text.render({"suffix": "new", "event": {}}) is None
    assert status_text.render({"name": "c", "state": "READY"}) is None
    assert status_text.render([1, 2]) is None
