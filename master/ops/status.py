"""Operations as people read them: each stage with its state, start, duration, nodes and
error; what a command that starts an operation answers; following one to its end; a
cluster's state with its last operation (or all of them).

Reads the store it is given, nothing else: the runners call it, and unit tests call it with a
store of their own.
"""

import time

from kubesalt.master.errors import Refused
from kubesalt.master.health import check as health_check
from kubesalt.master.inventory.store import NotFound
from kubesalt.master.ops import lease, plan


def status_view(op):
    """An operation for people: each stage with its state, start, duration, nodes, error,
    and each node's own start, duration, state and error (`per_node`)."""
    stages = []
    for stage in op["stages"]:
        stages.append({
            "stage": stage["name"], "title": stage["title"], "state": stage["state"],
            "started": _iso(stage["started_at"]),
            "duration_s": _duration(stage["started_at"], stage["finished_at"]),
            "nodes": stage["nodes"], "error": stage["error"],
            "per_node": _per_node(stage),
        })
    return {"operation": op["id"], "kind": op["kind"], "state": op["state"],
            "params": op.get("params") or {},
            "started": _iso(op["started_at"]), "finished": _iso(op["finished_at"]),
            "duration_s": _duration(op["started_at"], op["finished_at"]),
            "failed_stage": op["failed_stage"], "failed_node": op["failed_node"],
            "error": op["error"], "stages": stages}


def _duration(started, finished):
    if started and finished:
        return round(finished - started, 1)
    if started:
        return round(time.time() - started, 1)
    return None


def _per_node(stage):
    results = stage.get("node_results") or {}
    shown = {}
    for node in stage["nodes"]:
        result = results.get(node)
        if not isinstance(result, dict):
            continue
        shown[node] = {"state": result.get("state"), "started": _iso(result.get("started_at")),
                       "duration_s": _duration(result.get("started_at"),
                                               result.get("finished_at"))
                       if result.get("state") != "skipped" else None,
                       "error": result.get("error")}
    return shown


def _iso(timestamp):
    if not timestamp:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def summary(op):
    """What a command that starts an operation answers at once: its id and its stages."""
    return {"operation": op["id"], "cluster": op["cluster"], "kind": op["kind"],
            "state": op["state"],
            "stages": [s["name"] for s in op["stages"] if s["state"] != "skipped"]}


def follow(store, op, timeout, progress):
    """Report each stage's start and end through `progress(line)` until operation `op` (its
    record as last read) ends (`[12:01:03] containerd  done  8.2s  4 nodes`); returns its
    status view. Polls the store: the executor is another process."""
    deadline = time.monotonic() + timeout
    op_id, seen, last = op["id"], {}, op
    while True:
        try:
            op = store.operation(op_id)
        except NotFound:
            return vanished(store, op_id, last, progress)
        last = op
        for stage in op["stages"]:
            if seen.get(stage["name"]) != stage["state"]:
                seen[stage["name"]] = stage["state"]
                if stage["state"] in ("running", *plan.ENDED):
                    progress(progress_line(stage))
        if op["state"] in plan.ENDED:
            return status_view(op)
        if time.monotonic() > deadline:
            view = status_view(op)
            view["error"] = f"still {op['state']} after {timeout}s; see cluster.status"
            return view
        time.sleep(1)


def vanished(store, op_id, last, progress):
    """What a follower answers when operation `op_id`'s record is gone (`last`: the record as
    last read): deleting a cluster deletes its operations' records with it. A delete operation
    removes its cluster only once every other stage is done, so a gone cluster means that
    delete succeeded; any other operation's record going away is reported, never raised."""
    cluster = last["cluster"]
    if last["kind"] == "delete" and not _exists(store, cluster):
        ended = {**last, "state": "done", "stages": [
            stage if stage["state"] in (*plan.ENDED, "skipped") else {**stage, "state": "done"}
            for stage in last["stages"]]}
        for before, after in zip(last["stages"], ended["stages"], strict=True):
            if before is not after:
                progress(progress_line(after))
        view = status_view(ended)
        view["deleted"] = cluster
        return view
    where = f"; cluster {cluster} no longer exists" if not _exists(store, cluster) else ""
    return {"operation": op_id, "cluster": cluster, "kind": last["kind"], "state": "gone",
            "error": f"{op_id} is no longer recorded{where}; see salt-run cluster.list"}


def _exists(store, cluster):
    try:
        store.get_cluster(cluster)
    except NotFound:
        return False
    return True


def progress_line(stage, now=None):
    """One line for a stage that started or ended."""
    moment = time.strftime("%H:%M:%S", time.localtime(now))
    took = _duration(stage["started_at"], stage["finished_at"]) \
        if stage["state"] in plan.ENDED else None
    count = len(stage["nodes"])
    where = f"{count} node{'s' if count != 1 else ''}" if count else "controller"
    line = f"[{moment}] {stage['name']:<20} {stage['state']:<9} " \
           f"{'' if took is None else f'{took:.1f}s':>7}  {where}"
    if stage["error"] and stage["state"] in ("failed", "cancelled"):
        line += f": {stage['error']}"
    return line


def started(store, op, wait, timeout, progress):
    """What a command that starts an operation returns: at once its summary, or with `wait`
    the final status, with "retcode": 1 when the operation did not end done."""
    if not wait:
        return summary(op)
    final = follow(store, op, float(timeout), progress)
    if final["state"] != "done":
        final["retcode"] = 1
    return final


def unknown_cluster(name):
    return Refused.one("name", f"no cluster named {name!r}; see salt-run cluster.list")


def reaped(store, name):
    """Check cluster `name` exists (a refusal naming `name` if not) and record its operations
    whose executor died as interrupted, so what is read next is current."""
    try:
        store.get_cluster(name)
    except NotFound:
        raise unknown_cluster(name) from None
    store.reap_operations(name, lease.alive)


def cluster_status(store, name, history=False):
    """The cluster's state and its last operation stage by stage; with `history` every
    operation. Operations whose executor died are recorded as interrupted first."""
    reaped(store, name)
    ops = [status_view(op) for op in store.operations(name)]
    # The cluster's state is read after its operations: an executor sets it before it records
    # the operation done, so a finished operation is never shown beside its busy state (read
    # first, the state could be RESETTING while the operation read a moment later was done).
    try:
        record = store.get_cluster(name)
    except NotFound:  # deleted between the two reads (cluster.delete force=True ended)
        raise unknown_cluster(name) from None
    result = {"cluster": name, "state": record["state"],
              "health": health_check.views(store)[0].get(name)}
    if history:
        result["operations"] = ops
    else:
        result["operation"] = ops[-1] if ops else None
    return result
