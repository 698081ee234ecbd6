"""An operation's node work as per-node tasks with their dependencies: what the executor
schedules (master/ops/scheduler.py). Pure data from the operation's record and the plan.

A task is one stage on one node: the stage's SLS applied there (for a drained stage: drain
from the first master, the SLS, uncordon). It may start once every task it `needs` is done.
What a stage waits for comes from the plan's `after` (master/ops/plan.py); a stage that runs
one node at a time (`parallel=False`) also chains its own tasks in node order. Work done in an
earlier run (skipped stages, `skipped` node records) has no task: waiting for it is waiting
for nothing.
"""

import dataclasses

from kubesalt.master.ops import plan

DRAIN_SLS = "kubesalt.kubeadm.drain"
UNCORDON_SLS = "kubesalt.kubeadm.uncordon"


@dataclasses.dataclass(frozen=True)
class Step:
    """One `state.sls` job: `sls` on `node`, with pillar `kubesalt_op`."""
    node: str
    sls: str
    op_pillar: dict


@dataclasses.dataclass
class Task:
    stage: str
    node: str
    steps: list
    timeout: int
    needs: set = dataclasses.field(default_factory=set)

    @property
    def key(self):
        return (self.stage, self.node)


def first_master(op):
    """The master the drains and cluster-wide stages act from: the node of the operation's
    first-master stage, done or not."""
    by_name = {stage.name: stage for stage in plan.PLANS[op["kind"]]}
    return next((s["nodes"][0] for s in op["stages"]
                 if by_name[s["name"]].targets == "first_master" and s["nodes"]), None)


def _done_earlier(stage):
    results = stage.get("node_results") or {}
    return {n for n, r in results.items() if isinstance(r, dict) and r.get("state") == "skipped"}


def build(op, masters):
    """{(stage, node): Task} for every node stage of operation record `op` still to run;
    `masters` are the cluster's master node ids (for "stage/masters" dependencies)."""
    by_name = {stage.name: stage for stage in plan.PLANS[op["kind"]]}
    drain_from = first_master(op)
    params = op.get("params") or {}
    stages = [s for s in op["stages"] if by_name[s["name"]].targets != "controller"]
    tasks = {}
    for record in stages:
        stage = by_name[record["name"]]
        if record["state"] == "skipped":
            continue
        earlier = _done_earlier(record)
        previous = None
        for node in record["nodes"]:
            if node in earlier:
                continue
            if stage.drain:
                node_params = dict(params, node=node)
                steps = [Step(drain_from, DRAIN_SLS, node_params),
                         Step(node, stage.sls, node_params),
                         Step(drain_from, UNCORDON_SLS, node_params)]
            else:
                steps = [Step(node, stage.sls, params)]
            task = Task(stage.name, node, steps, stage.timeout)
            if not stage.parallel and previous is not None:
                task.needs.add(previous)
            tasks[task.key] = task
            previous = task.key
    for task in tasks.values():
        task.needs |= _needs(task, by_name, stages, tasks, set(masters))
    return tasks


def _needs(task, by_name, stages, tasks, masters):
    stage = by_name[task.stage]
    names = [s["name"] for s in stages]
    if stage.after is None:
        earlier = names[:names.index(task.stage)]
        return {key for key in tasks if key[0] in earlier}
    needs = set()
    for entry in stage.after:
        name, _, scope = entry.partition("/")
        if name not in by_name:
            raise ValueError(f"stage {task.stage} comes after unknown stage {name!r}")
        of_stage = {key for key in tasks if key[0] == name}
        if scope == "node":
            of_stage = {key for key in of_stage if key[1] == task.node}
        elif scope == "masters":
            of_stage = {key for key in of_stage if key[1] in masters}
        elif scope:
            raise ValueError(f"stage {task.stage}: unknown scope {scope!r} in {entry!r}")
        needs |= of_stage
    return needs


def critical_path(intervals, tasks):
    """The longest chain of task durations through the dependencies: `intervals` maps a task
    key to (started, finished) of its run. Returns (seconds, [keys along the chain])."""
    best = {}

    def longest(key):
        if key not in best:
            start, end = intervals[key]
            before = [longest(k) for k in tasks[key].needs if k in intervals]
            chain = max(before, default=(0.0, []))
            best[key] = (chain[0] + (end - start), chain[1] + [key])
        return best[key]

    return max((longest(k) for k in intervals if k in tasks), default=(0.0, []))
