"""Cancelling a cluster's running operation: the request is recorded, and the operation's
executor (another process) stops scheduling, kills the jobs running on the nodes and records
the operation cancelled at the stages it was in. A cancelled operation is resumed like a
failed one, by running the same command again. Other clusters' operations are not touched."""

from kubesalt.master.errors import Refused
from kubesalt.master.ops import status


def request(store, cluster):
    """Ask the executor of `cluster`'s running operation to cancel it; the operation record."""
    status.reaped(store, cluster)
    running = [op for op in store.operations(cluster) if op["state"] in ("queued", "running")]
    if not running or not store.request_cancel(running[-1]["id"]):
        raise Refused.one("name", f"{cluster} has no running operation to cancel; see "
                                  f"salt-run cluster.status {cluster}")
    return store.operation(running[-1]["id"])


def answer(store, op, wait, timeout, progress):
    """At once: the operation and that it is being cancelled; with `wait`, its final status
    once the executor stopped."""
    if not wait:
        return {"operation": op["id"], "cluster": op["cluster"], "kind": op["kind"],
                "state": "cancelling"}
    final = status.follow(store, op, float(timeout), progress)
    if final["state"] not in ("cancelled", "queued", "running"):
        final["error"] = f"{op['id']} ended {final['state']} before it could be cancelled"
    return final
