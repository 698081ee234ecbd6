"""Operations whose executor ran on another master that stopped renewing its lease (that
master died, or lost the database): a surviving master records them as interrupted and
resumes each, as an operator would, with the verb that resumes its kind (a rerun skips what
finished). Operations of this machine's own executors are never taken over: their liveness
is known here (master/ops/lease.py), and a dead one is recorded as interrupted when read.

Two survivors may both see a lapsed lease: the store lets only one operation of a cluster be
active, so the second resume is refused and changes nothing.
"""

from kubesalt.master.ops import lease

LAPSED = ("interrupted: the master running this operation stopped renewing its lease; "
          "another master resumed it")


def resume_call(op):
    """(runner function, positional args, keyword args) that resume `op`."""
    cluster, params = op["cluster"], op.get("params") or {}
    if op["kind"] == "provision":
        return "cluster.provision", [cluster], {}
    if op["kind"] == "upgrade":
        return "cluster.upgrade", [cluster], {}
    if op["kind"] == "reset":
        return "cluster.reset", [cluster], {"confirm": True}
    if op["kind"] == "delete":
        return "cluster.delete", [cluster], {"force": True, "confirm": True}
    if op["kind"] == "remove-node":
        return "node.remove", [params["node"]], {"drain": params.get("drain", True)}
    raise ValueError(f"no verb resumes a {op['kind']} operation")


def lapsed(store, now=None):
    """The active operations of other machines' executors whose lease ran out."""
    return [op_id for op_id, executor in store.active_operations()
            if not lease.here(executor) and not lease.alive(executor, now=now)]


def take_over(store, run, now=None):
    """Record each lapsed operation as interrupted and resume it through `run(fun, args,
    kwargs)` (a runner call on this master); returns [(operation id, what run returned)]."""
    taken = []
    for op_id in lapsed(store, now):
        store.interrupt_operation(op_id, LAPSED)
        fun, args, kwargs = resume_call(store.operation(op_id))
        taken.append((op_id, run(fun, args, kwargs)))
    return taken
