"""Running an operation (provision, upgrade, reset, remove-node, delete); master/ops/status.py reads
its record for people.

The executor turns the operation's stages into per-node tasks (master/ops/lanes.py), has the
scheduler run them as Salt jobs (master/ops/scheduler.py), and records each stage from the
jobs it follows: each node's start, end, result and error, the stage's state from its nodes',
and at the end which stage failed on which node. The stages that target the controller come
last and are done by the executor itself, through the callables its caller passes (they need
Salt's key store, which this module does not touch).
"""

import os
import time

from kubesalt.master.ops import lanes, lease, plan
from kubesalt.master.ops.scheduler import Scheduler

# What a node is while an operation works on it, and what the cluster is meanwhile (None:
# the cluster's state does not change, e.g. while one node is removed).
BUSY = {"provision": ("PROVISIONING", "PROVISIONING"), "upgrade": ("UPGRADING", "UPGRADING"),
        "reset": ("RESETTING", "RESETTING"), "remove-node": ("REMOVING", None),
        "delete": ("RESETTING", "DELETING")}


def mark_ready(store, op):
    """The `ready` stage of provisioning and upgrade: the cluster and its nodes are READY."""
    store.set_node_phase(_node_ids(op), "READY")
    store.set_cluster_state(op["cluster"], "READY")


def _node_ids(op):
    """The nodes an operation is about: a removal's one node (the master it drains from is
    only a means), the nodes an addition adds (the masters it uses only serve them), every
    node of the other operations."""
    if op["kind"] == "remove-node":
        return [op["params"]["node"]]
    if op["params"].get("adding"):
        return list(op["params"]["adding"])
    return sorted({n for s in op["stages"] for n in s["nodes"]})


def _cluster_state_meanwhile(op):
    """What the cluster is while `op` runs and after it fails (None: unchanged). Nodes added
    to a READY cluster do not stop it serving: it stays READY, and only they show the
    operation's progress and failure."""
    if op["params"].get("adding"):
        return None
    return BUSY[op["kind"]][1]


def execute(store, salt, op_id, prepare=None, controller_stages=None, masters=(),
            notify=None):
    """Run operation `op_id` to its end. `salt` is the scheduler's Salt side
    (master/verbs/saltjobs.py); `prepare(cluster)` issues what the nodes' pillar needs first
    (certificates.prepare); `controller_stages` maps the name of each stage the controller
    does to a callable `(store, op)`, run in plan order once every node stage succeeded
    (default: `ready`); `masters` are the cluster's master ids; `notify(tag, data)` puts a
    stage's changes on the event bus."""
    controller_stages = {"ready": mark_ready, **(controller_stages or {})}
    op = store.operation(op_id)
    # the operation's record names this process as its executor while its lease is renewed
    holder = lease.owner()
    store.start_operation(op_id, os.getpid(), holder, time.time() + lease.LEASE_SECONDS)
    with lease.Heartbeat(store, op_id, holder):
        return _run(store, salt, op, prepare, controller_stages, masters, notify)


def _run(store, salt, op, prepare, controller_stages, masters, notify):
    op_id, cluster = op["id"], op["cluster"]
    node_phase, cluster_state = BUSY[op["kind"]][0], _cluster_state_meanwhile(op)
    node_ids = _node_ids(op)
    if cluster_state:
        store.set_cluster_state(cluster, cluster_state)
    store.set_node_phase(node_ids, node_phase)
    by_name = {s.name: s for s in plan.PLANS[op["kind"]]}
    failed, cancelled = [], False
    try:
        if prepare is not None:
            prepare(cluster)
        tasks = lanes.build(op, masters)
        recorder = StageRecorder(store, op, notify)
        scheduler = Scheduler(tasks, salt, on_change=recorder.changed,
                              cancelled=lambda: store.cancel_requested(op_id) is not None)
        recorder.results = scheduler.results
        results = scheduler.run()
        recorder.record_all(final=True)
        failed = _in_plan_order(op, scheduler.failures())
        cancelled = any(r["state"] == "cancelled" for r in results.values()) or \
            store.cancel_requested(op_id) is not None
        for stage in op["stages"]:
            if failed or cancelled:
                break
            if stage["state"] == "skipped" or by_name[stage["name"]].targets != "controller":
                continue
            store.stage_started(op_id, stage["name"])
            # read now: the stage that deletes the cluster deletes this record too
            last_record = store.operation(op_id) \
                if by_name[stage["name"]].removes_cluster else None
            try:
                controller_stages[stage["name"]](store, op)
            except Exception as exc:  # noqa: BLE001 - recorded as the stage's failure
                failed = [(stage["name"], None, f"{type(exc).__name__}: {exc}")]
                break
            if last_record is not None:
                return _ended_done(last_record)
            store.stage_finished(op_id, stage["name"], True)
    except Exception as exc:  # noqa: BLE001 - any failure must end in the record
        failed = [(None, None, f"{type(exc).__name__}: {exc}")]
    op = store.operation(op_id)
    if failed or cancelled:
        if failed:
            stage, node, comment = _first_failure(op, failed)
            state = "failed"
        else:
            stage, node, comment = _first_cancelled(op), None, plan.CANCELLED
            state = "cancelled"
        if stage and not any(s["name"] == stage and s["state"] in plan.UNFINISHED
                             for s in op["stages"]):
            store.stage_finished(op_id, stage, False, error=comment,
                                 node_results=_with_node(op, stage, node, comment))
        store.finish_operation(op_id, False, error=comment, failed_stage=stage,
                               failed_node=node, state=state)
        store.set_node_phase(node_ids, "FAILED")
        if cluster_state:
            store.set_cluster_state(cluster, "FAILED")
        return store.operation(op_id)
    store.finish_operation(op_id, True)
    return store.operation(op_id)


class StageRecorder:
    """Writes a stage's record whenever one of its nodes starts or ends: each node's own
    start, end, state and error (`node_results`), and the stage's state from its nodes'."""

    def __init__(self, store, op, notify=None):
        self.store, self.op, self.notify = store, op, notify
        self.results = {}
        self.shown = {}

    def changed(self, stage_name):
        self._record(self._stage(stage_name), final=False)

    def record_all(self, final):
        for stage in self.op["stages"]:
            if stage["state"] != "skipped" and stage["nodes"]:
                self._record(stage, final)

    def _stage(self, name):
        return next(s for s in self.op["stages"] if s["name"] == name)

    def _record(self, stage, final):
        node_results = dict(stage.get("node_results") or {})
        for node in stage["nodes"]:
            result = self.results.get((stage["name"], node))
            if result is not None and (result["state"] != "pending" or node not in
                                       node_results):
                node_results[node] = dict(result)
        state, started, finished, error = summarise(stage["nodes"], node_results, final)
        self.store.record_stage(self.op["id"], stage["name"], state, started, finished, error,
                                node_results)
        if self.notify and self.shown.get(stage["name"]) != state:
            self.shown[stage["name"]] = state
            self.notify(f"kubesalt/operation/{self.op['id']}/stage/{stage['name']}/{state}",
                        {"stage": stage["name"], "state": state})


def summarise(nodes, node_results, final):
    """(state, started_at, finished_at, error) of a stage from its nodes' records. A stage
    some of whose nodes are done while others wait is running; once the operation ended,
    pending (what did not finish runs again on a rerun)."""
    states = [(node_results.get(n) or {}).get("state", "pending") for n in nodes]
    started = [r["started_at"] for r in node_results.values()
               if isinstance(r, dict) and r.get("started_at")]
    finished = [r["finished_at"] for r in node_results.values()
                if isinstance(r, dict) and r.get("finished_at")]
    error = next((node_results[n].get("error") for n, st in zip(nodes, states, strict=True)
                  if st in plan.UNFINISHED), None)
    if "running" in states:
        state = "running"
    elif "failed" in states:
        state = "failed"
    elif "cancelled" in states:
        state = "cancelled"
    elif all(st in ("done", "skipped") for st in states):
        state = "done"
    elif any(st in ("done", "skipped") for st in states) and not final:
        state = "running"
    else:
        state = "pending"
    ended = state in plan.ENDED
    return (state, min(started) if started else None,
            max(finished) if ended and finished else None, error)


def _ended_done(op):
    """What the record of `op` would say had it been kept to its end, done: the stage that
    deleted the cluster took the record with it."""
    now = time.time()
    stages = [stage if stage["state"] in (*plan.ENDED, "skipped")
              else {**stage, "state": "done", "finished_at": now} for stage in op["stages"]]
    return {**op, "state": "done", "finished_at": now, "stages": stages}


def _with_node(op, stage, node, comment):
    if not node:
        return None
    record = next((s for s in op["stages"] if s["name"] == stage), {})
    results = dict(record.get("node_results") or {})
    results[node] = {"state": "failed", "error": comment}
    return results


def _in_plan_order(op, failures):
    order = {s["name"]: i for i, s in enumerate(op["stages"])}
    node_order = {n: i for s in op["stages"] for i, n in enumerate(s["nodes"])}
    return sorted(failures, key=lambda f: (order.get(f[0], len(order)),
                                           node_order.get(f[1], 0)))


def _first_cancelled(op):
    return next((s["name"] for s in op["stages"] if s["state"] == "cancelled"),
                next((s["name"] for s in op["stages"] if s["state"] in ("pending", "running")),
                     op["stages"][-1]["name"]))


def _first_failure(op, failed):
    """The earliest stage in plan order that failed; falls back to the running stage."""
    order = {s["name"]: i for i, s in enumerate(op["stages"])}
    named = [f for f in failed if f[0] in order]
    if named:
        return min(named, key=lambda f: order[f[0]])
    running = [s["name"] for s in op["stages"] if s["state"] == "running"]
    stage = running[0] if running else next(
        (s["name"] for s in op["stages"] if s["state"] == "pending"), op["stages"][-1]["name"])
    return stage, failed[0][1], failed[0][2]


CONTROLLER_STOPPED = ("interrupted: the controller stopped during this stage; run the "
                      "same command again (e.g. cluster.provision) to resume here")


def interrupt_running(store, is_alive, kill, reason=CONTROLLER_STOPPED):
    """Stop every operation's executor and record the operation as failed at its running
    stage, so that a rerun resumes there. Called when the controller stops: an executor
    cannot outlive the master it listens to (its event subscription dies with it)."""
    interrupted = []
    for op_id, executor in store.active_operations():
        if not lease.here(executor):
            continue  # another master's executor: it goes on there
        if executor.pid is not None and is_alive(executor):
            kill(executor.pid)
        store.interrupt_operation(op_id, reason)
        interrupted.append(op_id)
    return interrupted
