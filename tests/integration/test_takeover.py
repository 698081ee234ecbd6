"""A real controller's health engine takes over an operation whose executor ran on another
master that stopped renewing its lease (master/ops/takeover.py): the operation is recorded as
interrupted and resumed through the verb of its kind, run on this master. Here the other
master is only a record: a delete of an empty cluster, whose resume deletes it at once."""

import time

import pytest

from kubesalt.master.inventory.store import Store
from kubesalt.master.layout import Layout
from kubesalt.master.ops import lease
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
ELSEWHERE = lease.Owner("0" * 32, "their-boot", 7, 1)


def test_the_health_engine_resumes_a_lapsed_operation_of_another_master(controller):
    controller.run_ok("cluster.create", "tko")
    store = Store(Layout.for_root(controller.root).state_dir)
    store.create_operation("op-tko", "tko", "delete",
                           [{"name": "reset", "title": "Reset", "nodes": [], "skip": ""}],
                           lambda _: True)
    store.start_operation("op-tko", ELSEWHERE.pid, ELSEWHERE, time.time() - 1)
    wait_for(lambda: "tko" not in [c["name"] for c in controller.run_ok("cluster.list")], 90,
             "the health engine to resume the delete, which deletes the empty cluster")
