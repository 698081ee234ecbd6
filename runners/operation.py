"""Operation plumbing: the detached executor.

Operators do not call it; `cluster.provision` (upgrade, reset, delete, node.remove) starts
`operation.execute`, which fires `kubesalt/operation/<id>/...` events on the master bus as its
stages change.
"""

import functools

from kubesalt.master.ops import certificates, deletion, executor, plan
from kubesalt.master.ops import removal
from kubesalt.master.ops import reset
from kubesalt.master.ops import status
from kubesalt.master.verbs import saltcalls, saltjobs
from kubesalt.master.verbs import support

__virtualname__ = "operation"


def __virtual__():
    return __virtualname__


def execute(operation_id):
    """Run an operation to its end (started detached by cluster.provision)."""
    store = support.store(__opts__)
    layout = support.layout(__opts__)

    controller_stages = {
        "forget-nodes": functools.partial(_forget, reset.forget_nodes, layout),
        "forget-node": functools.partial(_forget, removal.forget_node, layout),
        "delete-cluster": functools.partial(deletion.delete_cluster, layout),
    }
    op = store.operation(operation_id)
    masters = [n["id"] for n in store.list_nodes(op["cluster"])
               if "master" in plan.roles(n)]
    jobs = saltjobs.SaltJobs(__opts__)
    try:
        result = executor.execute(
            store, jobs, operation_id,
            prepare=functools.partial(certificates.prepare, layout, store)
            if op["kind"] in certificates.KINDS else None,
            controller_stages=controller_stages, masters=masters,
            notify=jobs.fire)
    finally:
        jobs.close()
    view = status.status_view(result)
    saltcalls.fire(__opts__, f"kubesalt/operation/{operation_id}/{result['state']}", view)
    return view


def _forget(forget, layout, store, op):
    forget(store, op, layout, functools.partial(saltcalls.delete_keys_once_gone, __opts__))

