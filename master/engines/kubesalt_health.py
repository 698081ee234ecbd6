"""Salt engine `kubesalt_health`: checks every cluster's health every `interval` seconds
(master/health) and fires an event for each change of a cluster's or node's health, so a
reactor or a watcher of the bus hears of a node going down without polling. Each round also
asks for another probe of approved nodes left unprobed (master/health/reprobe.py) and resumes
the operations of another master whose lease lapsed (master/ops/takeover.py; records shared
in PostgreSQL).

`cluster.health NAME` runs the same check on demand."""

import logging
import time

import salt.runner

from kubesalt.master.health import assess, check, reprobe
from kubesalt.master.inventory import nodes as nodes_mod
from kubesalt.master.ops import takeover
from kubesalt.master.verbs import saltcalls
from kubesalt.master.verbs import support

log = logging.getLogger(__name__)

INTERVAL = 15


def start(interval=INTERVAL, reprobe_after=reprobe.RETRY_EVERY):
    store = support.store(__opts__)
    pki_dir = support.pki_dir(__opts__)
    probe = saltcalls.HealthProbe(__opts__, check.kubectl_command())
    unprobed = reprobe.Reprobe(reprobe_after)
    log.info("kubesalt health checks every %ss", interval)
    try:
        while True:
            started = time.monotonic()
            check_all(store, pki_dir, probe)
            try:
                probe_again(store, pki_dir, unprobed, started)
            except Exception:  # noqa: BLE001 - the health checks must go on
                log.exception("probing unprobed nodes again failed")
            try:
                takeover.take_over(store, _resume)
            except Exception:  # noqa: BLE001 - the health checks must go on
                log.exception("taking over lapsed operations failed")
            # the engine's own pace, not a synchronisation: the next round of checks
            time.sleep(max(0.0, float(interval) - (time.monotonic() - started)))
    finally:
        probe.close()


def check_all(store, pki_dir, probe):
    for cluster in store.clusters():
        name = cluster.spec.name
        try:
            changes = check.check(store, pki_dir, probe, name)
        except Exception:  # noqa: BLE001 - one cluster's failure must not stop the others'
            log.exception("health check of cluster %s failed", name)
            continue
        saltcalls.fire_health(__opts__, changes)


def probe_again(store, pki_dir, unprobed, now):
    """Ask the reactor to probe the approved nodes that answered this round's pings but have
    no probed facts (see master/health/reprobe.py)."""
    health = store.node_health()
    answering = [v["id"] for v in nodes_mod.list_nodes(store, pki_dir, status="APPROVED")
                 if (health.get(v["id"]) or {}).get("state") not in (None, assess.DISCONNECTED)]
    for node_id in unprobed.due(answering, lambda i: bool(
            saltcalls.cached_grains(__opts__, i).get("kubesalt_interfaces")), now):
        log.warning("node %s answers but has no probed facts: probing it again", node_id)
        saltcalls.fire(__opts__, support.node_tag(node_id, "reprobe"), {"id": node_id})


def _resume(fun, args, kwargs):
    """Run the verb that resumes a taken-over operation, as salt-run would on this master."""
    log.warning("resuming an operation whose master stopped renewing its lease: %s %s %s",
                fun, args, kwargs)
    return salt.runner.RunnerClient(__opts__).cmd(fun, arg=args, kwarg=kwargs,
                                                  print_event=False)
