"""Starting an operation: record it with its stages, then run its executor
(`salt-run operation.execute ID`) detached, so the runner returns at once with the operation id
and the operation outlives the operator's shell. One operation per cluster at a time: the
store refuses a second while the first one's executor lives."""

import secrets
import subprocess
import sys
import time
from pathlib import Path

from kubesalt.master.ops import lease, plan
from kubesalt.master.errors import Refused
from kubesalt.master.inventory.store import AlreadyExists


def start(store, layout, conf_dir, cluster, kind, stages, params=None, spawn=True):
    """Record operation `kind` of `cluster` with its resolved `stages` and start it; returns
    the operation record."""
    op_id = f"op-{secrets.token_hex(4)}"
    try:
        store.create_operation(op_id, cluster, kind, stages, lease.alive, params=params)
    except AlreadyExists as exc:
        raise Refused.one("name", f"operation {exc.args[0]} is still running on {cluster}; "
                                  "wait for it (cluster.status)") from None
    if spawn:
        started(store, op_id, spawn_executor(layout, conf_dir, op_id))
    return store.operation(op_id)


def started(store, op_id, pid):
    """Record executor `pid` as running `op_id`, until it takes the lease over itself."""
    store.start_operation(op_id, pid, lease.owner(pid), time.time() + lease.LEASE_SECONDS)


def spawn_executor(layout, conf_dir, op_id):
    log_dir = Path(layout.state_dir) / "operations"
    log_dir.mkdir(parents=True, exist_ok=True)
    salt_run = Path(sys.executable).parent / "salt-run"
    with open(log_dir / f"{op_id}.log", "ab") as log:
        proc = subprocess.Popen(  # noqa: S603
            [str(salt_run), "-c", str(conf_dir), "--out=json", "operation.execute", op_id],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True)
    return proc.pid


def last_failed(store, cluster, kind):
    """The cluster's last operation when it is a failed or cancelled `kind`: a rerun resumes
    it."""
    history = store.operations(cluster)
    if history and history[-1]["kind"] == kind and history[-1]["state"] in plan.UNFINISHED:
        return history[-1]
    return None


def earlier_work(op):
    """{stage name: node ids} an operation finished, counting what it skipped as done by the
    run before it: the rerun of a failed operation skips exactly that."""
    done = {}
    for stage in op["stages"]:
        if stage["state"] == "done" or (stage["state"] == "skipped"
                                        and stage["error"] == plan.EARLIER):
            done[stage["name"]] = list(stage["nodes"])
            continue
        results = stage.get("node_results") or {}
        finished = [node for node, result in results.items()
                    if isinstance(result, dict) and result.get("state") in ("done", "skipped")]
        if finished:
            done[stage["name"]] = finished
    return done
