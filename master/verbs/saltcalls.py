"""Every call kubesalt's runners and its engine make into Salt, in one place. Each takes the
master's `opts` explicitly (a runner passes its __opts__), so nothing here depends on the
loader's dunders."""

import time

import salt.client
import salt.runner
import salt.utils.event
import salt.utils.minions
import salt.wheel

from kubesalt.master.verbs import support

# How long a probe waits for a node's kubesalt grains after syncing its modules.
PROBE_TIMEOUT = 60


def fire(opts, tag, data):
    """Put an event on the master's bus."""
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
        bus.fire_event(dict(data), tag)  # fire_event stamps the dict it is given


def fire_node(opts, node_id, status, data=None):
    """A node's status change: `kubesalt/node/<id>/<status>`, `data` with the id and status."""
    fire(opts, support.node_tag(node_id, status), dict(data or {}, id=node_id, status=status))


def progress(jid_event):
    """`progress(message)` for a runner that follows an operation: a progress event of its job,
    which salt-run prints as it comes."""
    def report(message):
        jid_event.fire_event({"message": message}, "progress")

    return report


def cached_grains(opts, node_id):
    """A node's grains from the master's minion data cache ({} before the first probe)."""
    return salt.utils.minions.get_minion_data(node_id, opts)[1] or {}


def connected_ids(opts):
    """The ids of the minions connected to the master now."""
    return set(salt.utils.minions.CkMinions(opts).connected_ids())


def _wheel(opts, fun, node_id, kwarg=None):
    return salt.wheel.WheelClient(opts).cmd(fun, [node_id], kwarg=kwarg, print_event=False)


def accept_key(opts, node_id):
    """Accept a node's pending key."""
    _wheel(opts, "key.accept", node_id)


def reject_key(opts, node_id):
    """Reject a node's key, pending or accepted."""
    _wheel(opts, "key.reject", node_id, kwarg={"include_accepted": True})


def delete_keys(opts, ids):
    """Delete nodes' keys from Salt's key store (and so their minion data cache)."""
    for node_id in ids:
        _wheel(opts, "key.delete", node_id)


def probe(opts, node_id, timeout=PROBE_TIMEOUT):
    """Sync kubesalt's modules and grains to a node, wait for its grains, and have the master
    cache them: {"probed": True}, or {"probed": False, "reason": ...}."""
    with salt.client.get_local_client(opts["conf_file"]) as client:
        client.cmd(node_id, "saltutil.sync_all", kwarg={"refresh": True}, timeout=60)
        # sync_all reloads modules asynchronously on the minion: wait until our grains
        # answer, then refresh pillar with wait=True, which is what stores the grains in the
        # master's cache.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = client.cmd(node_id, "grains.get", ["kubesalt_interfaces"], timeout=10)
            if answer.get(node_id):
                client.cmd(node_id, "saltutil.refresh_pillar", kwarg={"wait": True},
                           timeout=60)
                return {"probed": True}
            time.sleep(0.5)
    return {"probed": False, "reason": f"no facts from {node_id} within {timeout}s"}


def orchestrator(opts):
    """The executor's `run_orchestration(mods, pillar)`: state.orchestrate on this master,
    returning the orchestrate return."""
    runner = salt.runner.RunnerClient(opts)

    def run_orchestration(mods, pillar):
        return runner.cmd("state.orchestrate", [mods], kwarg={"pillar": pillar},
                          full_return=False, print_event=False)

    return run_orchestration
