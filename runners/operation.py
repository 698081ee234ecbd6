"""Operation plumbing: the detached executor and the stage records the orchestration writes.

Operators do not call these; `cluster.provision` (upgrade, reset, node.remove) starts
`operation.execute` and the
orchestration calls `operation.stage_started` / `operation.stage_finished`. Each also fires
`kubesalt/operation/<id>/...` events on the master bus.
"""

import functools

import salt.runner
import salt.utils.event

from kubesalt.master.ops import certificates, executor
from kubesalt.master.ops import removal
from kubesalt.master.ops import reset
from kubesalt.master.verbs import support

__virtualname__ = "operation"


def __virtual__():
    return __virtualname__


def _fire(tag, data):
    with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"],
                                           listen=False) as bus:
        bus.fire_event(data, tag)


def execute(operation_id):
    """Run an operation to its end (started detached by cluster.provision)."""
    store = support.store(__opts__)
    runner = salt.runner.RunnerClient(__opts__)
    layout = support.layout(__opts__)

    def run_orchestration(mods, pillar):
        return runner.cmd("state.orchestrate", [mods], kwarg={"pillar": pillar},
                          full_return=False, print_event=False)

    controller_stages = {
        "forget-nodes": functools.partial(_forget, reset.forget_nodes, layout),
        "forget-node": functools.partial(_forget, removal.forget_node, layout),
    }
    op = store.operation(operation_id)
    result = executor.execute(
        store, run_orchestration, operation_id,
        prepare=functools.partial(certificates.prepare, layout, store)
        if op["kind"] in certificates.KINDS else None,
        controller_stages=controller_stages)
    _fire(f"kubesalt/operation/{operation_id}/{result['state']}", executor.status_view(result))
    return executor.status_view(result)


def _forget(forget, layout, store, op):
    forget(store, op, layout, functools.partial(support.delete_keys, __opts__))


def stage_started(operation, stage):
    support.store(__opts__).stage_started(operation, stage)
    _fire(f"kubesalt/operation/{operation}/stage/{stage}/running", {"stage": stage})
    return True


def stage_finished(operation, stage):
    support.store(__opts__).stage_finished(operation, stage, True)
    _fire(f"kubesalt/operation/{operation}/stage/{stage}/done", {"stage": stage})
    return True
