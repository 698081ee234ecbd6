"""Lab provisioning wall time of a dedicated multi-master cluster with 1 worker and with 6
workers through `cluster.provision` (the operation's executor: per-node lanes), and the same
stages applied by hand node after node with `salt NODE state.sls` (the naive way). One run
each, side by side, with the ratios. For each operation also its critical path: the longest
chain of per-node stage durations through the plan's dependencies (master/ops/lanes.py), and
wall time / critical path, which is what scheduling and bookkeeping add.

    sudo .venv/bin/python -m bench.provision_scale [--workers 6] [--only orchestrated|by_hand]
"""

import argparse
import json
import subprocess
import time

from bench.lab_session import lab_and_controller
from kubesalt.master.inventory.store import Store
from kubesalt.master.ops import certificates, context, lanes, plan
from kubesalt.master.layout import Layout
from tests.integration.controller import BIN
from tests.labkit import artifacts as lab_artifacts
from tests.e2e.test_provision import K8S, configure, enroll, provision


def orchestrated(lab, controller, root, cluster, nodes):
    ids = enroll(lab, controller, cluster, nodes, root / cluster, ha=True,
                 dedicated_master=True, blueprint="minimal")
    configure(controller, ids, ["master"] * 3 + ["worker"] * (len(ids) - 3))
    started = time.monotonic()
    status = provision(controller, cluster, timeout=3600)
    if status["state"] != "READY":
        raise RuntimeError(f"{cluster}: {status['operation']['error']}")
    wall = round(time.monotonic() - started, 1)
    masters = [i for i in ids if "master" in controller.run_ok("node.show", i)["config"]["roles"]]
    return wall, critical_path(controller, status["operation"]["operation"], masters)


def critical_path(controller, op_id, masters):
    """The operation's recorded duration, its critical path and their ratio."""
    op = Store(Layout.for_root(controller.root).state_dir).operation(op_id)
    tasks = lanes.build(dict(op, stages=[dict(s, node_results=None) for s in op["stages"]]),
                        masters)
    intervals = {(stage["name"], node): (result["started_at"], result["finished_at"])
                 for stage in op["stages"]
                 for node, result in (stage["node_results"] or {}).items()
                 if isinstance(result, dict) and result.get("finished_at")
                 and result.get("started_at")}
    seconds, chain = lanes.critical_path(intervals, tasks)
    duration = op["finished_at"] - op["started_at"]
    return {"operation_s": round(duration, 1), "critical_path_s": round(seconds, 1),
            "wall_vs_critical_path": round(duration / seconds, 2) if seconds else None,
            "critical_path": [f"{stage}@{node}" for stage, node in chain]}


def by_hand(lab, controller, root, cluster, nodes):
    """Every stage's SLS, one node at a time, in plan order. Except etcd: applied to one
    master after another, the first member waits for a quorum that the next ones cannot
    bring before its health check gives up (measured: the naive run stalls there), so the
    masters get the etcd stage together, as an operator would have to."""
    ids = enroll(lab, controller, cluster, nodes, root / cluster, ha=True,
                 dedicated_master=True, blueprint="minimal")
    configure(controller, ids, ["master"] * 3 + ["worker"] * (len(ids) - 3))
    records = context.join_order({"id": i, "config": controller.run_ok("node.show", i)["config"]}
                                 for i in ids)
    # what an operation does first: the cluster's CA, etcd and join secrets
    layout = Layout.for_root(controller.root)
    certificates.prepare(layout, Store(layout.state_dir), cluster)
    started = time.monotonic()
    for stage in plan.STAGES:
        if not stage.sls or stage.when == "storage":
            continue
        targets = plan.select(records, stage.targets)
        batches = [targets] if stage.name == "etcd" else [[t] for t in targets]
        for batch in batches:
            proc = subprocess.run([str(BIN / "salt"), "-c", str(controller.conf_dir),
                                   "--out=json", "--static", "-t", "1800", "-L",
                                   ",".join(batch), "state.sls", stage.sls],
                                  capture_output=True, text=True, timeout=1900, check=False)
            if not _all_succeeded(proc.stdout, batch):
                raise RuntimeError(f"{stage.name} on {batch}: {proc.stdout[-2000:]}"
                                   f"{proc.stderr[-2000:]}")
    return round(time.monotonic() - started, 1)


def _all_succeeded(output, node_ids):
    try:
        returns = json.loads(output)
    except ValueError:
        return False
    return all(isinstance(returns.get(n), dict) and
               all(state.get("result") is True for state in returns[n].values())
               for n in node_ids)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--only", choices=("orchestrated", "by_hand"),
                        help="run one of the two ways only")
    args = parser.parse_args()
    size = 3 + args.workers
    results = {}
    with lab_and_controller(size) as (lab, controller, root):
        source = root / "artifacts"
        lab_artifacts.build(source, K8S)
        controller.run_ok("artifacts.sync", K8S, f"source={source}")
        for label, runner, count in (("orchestrated_1_worker", orchestrated, 4),
                                     (f"orchestrated_{args.workers}_workers", orchestrated,
                                      size),
                                     ("by_hand_1_worker", by_hand, 4),
                                     (f"by_hand_{args.workers}_workers", by_hand, size)):
            if args.only and not label.startswith(args.only):
                continue
            nodes = lab.renew(lab.nodes[:count])
            outcome = runner(lab, controller, root, label.replace("_", "-"), nodes)
            if isinstance(outcome, tuple):
                results[label], results[f"{label}_operation"] = outcome
            else:
                results[label] = outcome
    many = f"{args.workers}_workers"
    for name, top, bottom in (("orchestrated_many_vs_1", f"orchestrated_{many}",
                               "orchestrated_1_worker"),
                              ("by_hand_many_vs_1", f"by_hand_{many}", "by_hand_1_worker"),
                              ("by_hand_vs_orchestrated_many", f"by_hand_{many}",
                               f"orchestrated_{many}")):
        if top in results and bottom in results:
            results[f"ratio_{name}"] = round(results[top] / results[bottom], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
