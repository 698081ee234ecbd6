"""Salt engine `kubesalt_health`: checks every cluster's health every `interval` seconds
(master/health) and fires an event for each change of a cluster's or node's health, so a
reactor or a watcher of the bus hears of a node going down without polling.

`cluster.health NAME` runs the same check on demand."""

import logging
import time

from kubesalt.master.health import check
from kubesalt.master.verbs import saltcalls
from kubesalt.master.verbs import support

log = logging.getLogger(__name__)

INTERVAL = 15


def start(interval=INTERVAL):
    store = support.store(__opts__)
    pki_dir = support.pki_dir(__opts__)
    probe = saltcalls.HealthProbe(__opts__, check.kubectl_command())
    log.info("kubesalt health checks every %ss", interval)
    try:
        while True:
            started = time.monotonic()
            check_all(store, pki_dir, probe)
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
