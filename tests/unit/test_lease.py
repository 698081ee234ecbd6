"""An operation's executor as its record names it (master/ops/lease.py): an identity that a
reused pid or another machine's pid cannot pass for, and a lease renewed while it runs."""

import os
import subprocess
import sys
import time

from kubesalt.master.inventory.store import Executor
from kubesalt.master.ops import executor as operations
from kubesalt.master.ops import lease
from kubesalt.master.processes import this_boot
from tests.unit.test_operations import make_store
from tests.waiting import wait_for

FOREIGN_MACHINE = "0" * 32


def _record(owner, lease_until=None):
    return Executor(owner.pid, str(owner), lease_until)


def test_an_owner_reads_back_from_its_record():
    me = lease.owner()
    assert lease.Owner.parse(str(me)) == me
    assert me.pid == os.getpid() and me.started is not None
    assert lease.Owner.parse("junk") is None and lease.Owner.parse("a/b/c/d") is None


def test_this_process_is_alive_and_a_later_one_with_its_pid_is_not():
    me = lease.owner()
    assert lease.alive(_record(me))
    assert not lease.alive(_record(me._replace(started=me.started - 1)))
    assert not lease.alive(_record(me._replace(boot="another-boot")))


def test_an_ended_process_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # noqa: S603
    recorded = lease.owner(child.pid)
    child.wait()
    assert not lease.alive(_record(recorded))


def test_another_machines_executor_lives_while_its_lease_does():
    theirs = lease.Owner(FOREIGN_MACHINE, "their-boot", os.getpid(), 1)
    now = time.time()
    assert lease.alive(_record(theirs, now + 5), now=now)
    assert not lease.alive(_record(theirs, now - 1), now=now)
    assert not lease.alive(_record(theirs, None), now=now)
    assert not lease.here(_record(theirs)) and lease.here(_record(lease.owner()))


def test_records_with_a_pid_alone_are_checked_by_the_pid():
    assert lease.alive(Executor(os.getpid(), None, None))
    assert not lease.alive(Executor(2**22 + 12345, None, None))  # above pid_max
    assert lease.here(Executor(4242, None, None))


def test_the_heartbeat_renews_the_lease_until_the_operation_ends(records_dir):
    store = make_store(records_dir)
    me = lease.owner()
    store.start_operation("op-1", me.pid, me, time.time() + 1)

    def until():
        return dict(store.active_operations())["op-1"].lease_until

    first = until()
    with lease.Heartbeat(store, "op-1", me, every=0.05, lease=60) as heartbeat:
        wait_for(lambda: until() > first + 30, 10, "the lease to be renewed", interval=0.05)
        store.finish_operation("op-1", True)
        assert heartbeat.lost.wait(10), "an ended operation's lease is not renewed"
    assert not store.renew_lease("op-1", me, time.time() + 60)


def test_only_the_holder_renews(records_dir):
    store = make_store(records_dir)
    me = lease.owner()
    store.start_operation("op-1", me.pid, me, time.time() + 30)
    theirs = lease.Owner(FOREIGN_MACHINE, "their-boot", 7, 1)
    assert not store.renew_lease("op-1", theirs, time.time() + 60)
    assert store.renew_lease("op-1", me, time.time() + 60)


def test_a_stopping_controller_leaves_another_machines_operation_alone(records_dir):
    store = make_store(records_dir)
    theirs = lease.Owner(FOREIGN_MACHINE, "their-boot", os.getpid(), 1)
    store.start_operation("op-1", theirs.pid, theirs, time.time() + 30)
    killed = []
    assert operations.interrupt_running(store, lease.alive, killed.append) == []
    assert killed == [] and store.operation("op-1")["state"] == "running"


def test_a_lapsed_lease_lets_the_next_operation_start(records_dir):
    store = make_store(records_dir)
    theirs = lease.Owner(FOREIGN_MACHINE, "their-boot", 7, 1)
    store.start_operation("op-1", theirs.pid, theirs, time.time() - 1)
    stages = [{"name": "etcd", "title": "t", "nodes": [], "skip": ""}]
    store.create_operation("op-2", "c", "provision", stages, lease.alive)
    assert store.operation("op-1")["state"] == "failed"
    assert this_boot()[0] != FOREIGN_MACHINE
