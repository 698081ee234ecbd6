"""Who runs an operation, as its record says: the executor's owner identity (host, boot, pid
and the pid's start time) and a lease it renews while it runs.

A pid alone is not an identity: after a reboot or on a busy host a later process gets the same
number, and a pid recorded by another controller's master means nothing here. So an operation's
executor is alive when:
- it ran on this machine: its process is there with the same start time in the same boot;
- it ran elsewhere (another master over the same PostgreSQL): its lease has not run out.
Records from before owners were kept have only a pid, checked as before.
"""

import logging
import os
import threading
import time
from typing import NamedTuple

from kubesalt.master.processes import process_alive, start_ticks, this_boot

log = logging.getLogger(__name__)

# An executor renews its lease every RENEW_EVERY seconds; one that stopped renewing is taken for
# dead LEASE_SECONDS after its last renewal: three renewals missed, e.g. a master that lost
# power, or a database unreachable for that long.
LEASE_SECONDS = 30.0
RENEW_EVERY = 10.0


class Owner(NamedTuple):
    machine: str | None
    boot: str | None
    pid: int
    started: int | None

    def __str__(self):
        return f"{self.machine}/{self.boot}/{self.pid}/{self.started}"

    @classmethod
    def parse(cls, text):
        """The Owner a record holds, or None for none or an unreadable one."""
        try:
            machine, boot, pid, started = str(text).split("/")
            return cls(machine if machine != "None" else None, boot if boot != "None" else None,
                       int(pid), int(started) if started != "None" else None)
        except ValueError:
            return None


def owner(pid=None):
    """The owner identity of process `pid` (default: this one) on this host and boot."""
    pid = os.getpid() if pid is None else pid
    machine, boot = this_boot()
    return Owner(machine, boot, pid, start_ticks(pid))


def alive(executor, now=None):
    """Whether the executor an operation record names (`pid`, `owner`, `lease_until`, see
    Store.active_operations) still runs it."""
    recorded = Owner.parse(executor.owner) if executor.owner else None
    if recorded is None:
        return executor.pid is not None and process_alive(executor.pid)
    machine, boot = this_boot()
    if recorded.machine is not None and recorded.machine == machine:
        return (recorded.boot == boot and process_alive(recorded.pid)
                and start_ticks(recorded.pid) == recorded.started)
    now = time.time() if now is None else now
    return executor.lease_until is not None and executor.lease_until > now


def here(executor):
    """Whether the executor a record names ran on this machine (records from before owners
    were kept: yes, there was one controller)."""
    recorded = Owner.parse(executor.owner) if executor.owner else None
    return recorded is None or (recorded.machine is not None
                                and recorded.machine == this_boot()[0])


class Heartbeat:
    """Renews operation `op_id`'s lease for `holder` every RENEW_EVERY seconds on a thread of
    its own, so a long stage or a slow Salt call never lets it lapse. `lost` is set when the
    record no longer names this holder (the operation ended or was taken over elsewhere)."""

    def __init__(self, store, op_id, holder, every=RENEW_EVERY, lease=LEASE_SECONDS):
        self.store, self.op_id, self.holder = store, op_id, str(holder)
        self.every, self.lease = every, lease
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{op_id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(self.every + 5)

    def _run(self):
        while not self._stop.wait(self.every):
            try:
                if not self.store.renew_lease(self.op_id, self.holder,
                                              time.time() + self.lease):
                    self.lost.set()
                    return
            except Exception:  # noqa: BLE001 - a database hiccup: the next renewal retries
                log.warning("could not renew the lease of operation %s; retrying in %.0f s",
                            self.op_id, self.every, exc_info=True)
