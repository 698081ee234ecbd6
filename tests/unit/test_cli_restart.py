"""A REST user change restarts the controller only when no operation would be interrupted."""

import os

from kubesalt.master import cli, layout as layout_mod
from kubesalt.master.store import Store


def test_running_operations_are_those_whose_executor_lives(tmp_path):
    layout = layout_mod.Layout.for_root(tmp_path)
    assert cli.running_operations(layout) == []
    store = Store(layout.state_dir)
    store.create_cluster("c", {})
    stages = [{"name": "etcd", "title": "t", "nodes": [], "skip": ""}]
    store.create_operation("op-live", "c", "provision", stages, lambda pid: True)
    store.start_operation("op-live", os.getpid())
    store.create_cluster("d", {})
    store.create_operation("op-dead", "d", "provision", stages, lambda pid: True)
    store.start_operation("op-dead", 2**22 + 12345)  # above pid_max: never alive
    assert cli.running_operations(layout) == ["op-live"]
