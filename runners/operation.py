"""Operation plumbing: the detached executor and the stage records the orchestration writes.

Operators do not call these; `cluster.provision` (upgrade, reset, node.remove) starts
`operation.execute` and the
orchestration calls `operation.stage_started` / `operation.stage_finished`. Each also fires
`kubesalt/operation/<id>/...` events on the master bus.
"""

import functools

from kubesalt.master.ops import certificates, executor
from kubesalt.master.ops import removal
from kubesalt.master.ops import reset
from kubesalt.master.ops import status
from kubesalt.master.verbs import saltcalls
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
    }
    op = store.operation(operation_id)
    result = executor.execute(
        store, saltcalls.orchestrator(__opts__), operation_id,
        prepare=functools.partial(certificates.prepare, layout, store)
        if op["kind"] in certificates.KINDS else None,
        controller_stages=controller_stages)
    view = status.status_view(result)
    saltcalls.fire(__opts__, f"kubesalt/operation/{operation_id}/{result['state']}", view)
    return view


def _forget(forget, layout, store, op):
    forget(store, op, layout, functools.partial(saltcalls.delete_keys, __opts__))


def stage_started(operation, stage):
    support.store(__opts__).stage_started(operation, stage)
    saltcalls.fire(__opts__, f"kubesalt/operation/{operation}/stage/{stage}/running",
                   {"stage": stage})
    return True


def stage_finished(operation, stage):
    support.store(__opts__).stage_finished(operation, stage, True)
    saltcalls.fire(__opts__, f"kubesalt/operation/{operation}/stage/{stage}/done",
                   {"stage": stage})
    return True
