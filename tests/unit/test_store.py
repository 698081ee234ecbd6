import json
import multiprocessing
import sqlite3
import time

import pytest

from kubesalt.master.inventory import store as store_mod
from kubesalt.master.inventory.spec import ClusterSpec
from kubesalt.master.inventory.store import AlreadyExists, NotFound, Store


def test_create_get_update_delete(tmp_path):
    store = Store(tmp_path)
    store.create_cluster("a", {"labels": {}})
    with pytest.raises(AlreadyExists):
        store.create_cluster("a", {})
    rec = store.update_cluster("a", lambda s: {**s, "labels": {"k": "v"}})
    assert rec["spec"]["labels"] == {"k": "v"} and rec["revision"] == 2
    store.delete_cluster("a")
    with pytest.raises(NotFound):
        store.get_cluster("a")


def test_failed_change_rolls_back(tmp_path):
    store = Store(tmp_path)
    store.create_cluster("a", {"n": 1})

    def boom(spec):
        raise ValueError("refused")

    with pytest.raises(ValueError):
        store.update_cluster("a", boom)
    assert store.get_cluster("a")["revision"] == 1


def _add_label(path, i):
    Store(path).update_cluster("a", lambda s: {**s, "labels": {**s["labels"], f"l{i}": i}})


def test_concurrent_processes_lose_no_update(tmp_path):
    Store(tmp_path).create_cluster("a", {"labels": {}})
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_label, args=(tmp_path, i)) for i in range(12)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(Store(tmp_path).get_cluster("a")["spec"]["labels"]) == 12


def test_installers_valid_expired_revoked(tmp_path):
    store = Store(tmp_path)
    store.create_cluster("a", {})
    now = time.time()
    store.add_installer("a", "s1", now, now + 100)
    store.add_installer("a", "s2", now, now - 1)
    store.add_installer("a", "s3", now, now + 100)
    assert store.valid_installer_serials("a") == {"s1", "s3"}
    assert store.revoke_installers("a", keep={"s3"}) == ["s1", "s2"]
    assert store.valid_installer_serials("a") == {"s3"}
    store.delete_cluster("a")
    assert store.installers("a") == []


def test_rotation_leaves_only_the_newest_installer(tmp_path):
    store = Store(tmp_path)
    store.create_cluster("a", {})
    store.create_cluster("b", {})
    now = time.time()
    store.add_installer("a", "s1", now, now + 100)
    store.add_installer("b", "t1", now, now + 100)
    assert store.add_installer("a", "s2", now, now + 100) == []
    assert sorted(store.add_installer("a", "s3", now, now + 100, rotate=True)) == ["s1", "s2"]
    assert store.valid_installer_serials("a") == {"s3"}
    assert store.valid_installer_serials("b") == {"t1"}, "other clusters keep theirs"


def test_database_file_is_private(tmp_path):
    store = Store(tmp_path / "state")
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    assert oct(store.path.parent.stat().st_mode & 0o777) == "0o700"


def test_a_stored_tls_termination_is_dropped_by_the_migration(tmp_path, monkeypatch):
    # A cluster created while proxy.tls_termination was accepted must still load: a store
    # of the version before that migration, opened by this one, migrates on.
    before = next(i for i, script in enumerate(store_mod.MIGRATIONS)
                  if "tls_termination" in script)
    with monkeypatch.context() as older:
        older.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:before])
        Store(tmp_path)
    spec = ClusterSpec(name="c", k8s_version="1.30.10").to_dict()
    spec["proxy"] = {"http": "http://p:3128", "https": "", "no_proxy": "", "root_ca": "",
                     "tls_termination": True}
    with sqlite3.connect(tmp_path / store_mod.DB_NAME) as conn:
        conn.execute("INSERT INTO clusters(name, spec, created_at, updated_at) "
                     "VALUES ('c', ?, 0, 0)", (json.dumps(spec),))
    conn.close()
    cluster = Store(tmp_path).cluster("c")
    assert cluster.spec.proxy.http == "http://p:3128"
    assert "tls_termination" not in Store(tmp_path).get_cluster("c")["spec"]["proxy"]
