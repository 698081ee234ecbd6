"""The store's guarantees, on SQLite and on a real PostgreSQL server alike (`records_dir`
runs each test against both)."""

import json
import multiprocessing
import sqlite3
import time

import pytest

from kubesalt.master.inventory.spec import ClusterSpec
from kubesalt.master.inventory.storage import schema
from kubesalt.master.inventory.storage.sqlite import DB_NAME
from kubesalt.master.inventory.store import AlreadyExists, NotFound, Store


def test_create_get_update_delete(records_dir):
    store = Store(records_dir)
    store.create_cluster("a", {"labels": {}})
    with pytest.raises(AlreadyExists):
        store.create_cluster("a", {})
    rec = store.update_cluster("a", lambda s: {**s, "labels": {"k": "v"}})
    assert rec["spec"]["labels"] == {"k": "v"} and rec["revision"] == 2
    store.delete_cluster("a")
    with pytest.raises(NotFound):
        store.get_cluster("a")


def test_failed_change_rolls_back(records_dir):
    store = Store(records_dir)
    store.create_cluster("a", {"n": 1})

    def boom(spec):
        raise ValueError("refused")

    with pytest.raises(ValueError):
        store.update_cluster("a", boom)
    assert store.get_cluster("a")["revision"] == 1


def _add_label(path, i):
    Store(path).update_cluster("a", lambda s: {**s, "labels": {**s["labels"], f"l{i}": i}})


def test_concurrent_processes_lose_no_update(records_dir):
    Store(records_dir).create_cluster("a", {"labels": {}})
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_label, args=(records_dir, i)) for i in range(12)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(Store(records_dir).get_cluster("a")["spec"]["labels"]) == 12


def test_installers_valid_expired_revoked(records_dir):
    store = Store(records_dir)
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


def test_rotation_leaves_only_the_newest_installer(records_dir):
    store = Store(records_dir)
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
    assert oct(store.database.path.stat().st_mode & 0o777) == "0o600"
    assert oct(store.database.path.parent.stat().st_mode & 0o777) == "0o700"


def test_a_stored_tls_termination_is_dropped_by_the_migration(tmp_path, monkeypatch):
    # A cluster created while proxy.tls_termination was accepted must still load: a store
    # of the version before that migration, opened by this one, migrates on.
    before = next(i for i, script in enumerate(schema.SQLITE_HISTORY)
                  if "tls_termination" in script)
    with monkeypatch.context() as older:
        older.setattr(schema, "SQLITE_HISTORY", schema.SQLITE_HISTORY[:before])
        older.setattr(schema, "LATER", [])
        Store(tmp_path)
    spec = ClusterSpec(name="c", k8s_version="1.30.10").to_dict()
    spec["proxy"] = {"http": "http://p:3128", "https": "", "no_proxy": "", "root_ca": "",
                     "tls_termination": True}
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("INSERT INTO clusters(name, spec, created_at, updated_at) "
                     "VALUES ('c', ?, 0, 0)", (json.dumps(spec),))
    conn.close()
    cluster = Store(tmp_path).cluster("c")
    assert cluster.spec.proxy.http == "http://p:3128"
    assert "tls_termination" not in Store(tmp_path).get_cluster("c")["spec"]["proxy"]


def _try_operation(path, i, go):
    go.wait(60)
    try:
        Store(path).create_operation(f"op-{i}", "a", "provision", [], lambda pid: True)
    except AlreadyExists:
        raise SystemExit(3) from None


def test_racing_processes_start_one_operation_per_cluster(records_dir):
    Store(records_dir).create_cluster("a", {})
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_try_operation, args=(records_dir, i, go)) for i in range(5)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(60)
    assert sorted(p.exitcode for p in procs) == [0] + [3] * 4
    assert len(Store(records_dir).operations("a")) == 1


def _remember(path, go):
    go.wait(60)
    if not Store(path).remember_request("d1", time.time() + 60):
        raise SystemExit(3)


def test_a_request_racing_its_replays_is_accepted_once(records_dir):
    Store(records_dir)
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_remember, args=(records_dir, go)) for _ in range(4)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(60)
    assert sorted(p.exitcode for p in procs) == [0] + [3] * 3


def test_records_list_in_byte_order_whatever_the_locale(records_dir):
    # the test server's databases use a natural-language collation ("a" before "B")
    store = Store(records_dir)
    names = ["b", "B", "a-2", "a", "A", "a10", "a_1"]
    for name in names:
        store.create_cluster(name, {})
        store.enroll_node(f"n-{name}", name, "00", "s", None)
    assert [c["name"] for c in store.list_clusters()] == sorted(names)
    assert [n["id"] for n in store.list_nodes()] == sorted(f"n-{n}" for n in names)


def test_timestamps_keep_their_full_precision(records_dir):
    store = Store(records_dir)
    store.create_cluster("a", {})
    now = 1767225600.123456
    store.enroll_node("n1", "a", "00", "s", "10.0.0.1", now=now)
    assert store.get_node("n1")["enrolled_at"] == now
    assert store.get_cluster("a")["created_at"] == pytest.approx(time.time(), abs=60)


def test_a_failed_transaction_changes_nothing_and_the_next_one_works(records_dir):
    store = Store(records_dir)
    store.create_cluster("a", {})
    with pytest.raises(RuntimeError), store.transaction() as conn:
        conn.execute("UPDATE clusters SET state='X' WHERE name=?", ("a",))
        raise RuntimeError("stop")
    assert store.get_cluster("a")["state"] == "CREATED"
    with pytest.raises(Exception, match="(?i)unique|primary"), store.transaction() as conn:
        conn.execute("INSERT INTO installers(serial, cluster, issued_at, not_after) "
                     "VALUES ('s', 'a', 0, 1)")
        conn.execute("INSERT INTO installers(serial, cluster, issued_at, not_after) "
                     "VALUES ('s', 'a', 0, 1)")
    assert store.installers("a") == []
    store.set_cluster_state("a", "READY")
    assert store.get_cluster("a")["state"] == "READY"


def _columns(store, table):
    with store.reading() as conn:
        return [d[0] for d in conn.execute(f"SELECT * FROM {table} WHERE 1=0").description]


def test_both_databases_have_the_same_tables_and_columns(tmp_path, postgres_server):
    from kubesalt.master.inventory.storage import location

    lite = Store(tmp_path / "lite")
    (tmp_path / "pg").mkdir()
    location.choose(tmp_path / "pg", postgres_server.url(postgres_server.create_database(),
                                                         password=False))
    pg = Store(tmp_path / "pg")
    assert lite.database.tables() == pg.database.tables() == sorted(schema.TABLES)
    for table in schema.TABLES:
        assert _columns(lite, table) == _columns(pg, table), table


def test_both_databases_have_the_same_columns_at_the_latest_version(records_dir):
    # A schema version means the same tables and columns on SQLite and PostgreSQL: moving
    # the records (migrate-database) copies them column for column.
    store = Store(records_dir)
    with store.reading() as conn:
        if getattr(store.database, "path", None) is not None:
            columns = {table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
                       for table in schema.TABLES}
        else:
            columns = {table: [row[0] for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name=? "
                "ORDER BY ordinal_position", (table,))] for table in schema.TABLES}
    assert columns == EXPECTED_COLUMNS


EXPECTED_COLUMNS = {
    "clusters": ["name", "spec", "state", "created_at", "updated_at", "revision"],
    "installers": ["serial", "cluster", "issued_at", "not_after", "revoked_at"],
    "nodes": ["id", "cluster", "pub_sha256", "serial", "address", "enrolled_at", "updated_at",
              "config", "phase", "reported_facts"],
    "operations": ["id", "cluster", "kind", "state", "created_at", "started_at", "finished_at",
                   "pid", "error", "failed_stage", "failed_node", "params", "cancel_requested",
                   "owner", "lease_until"],
    "operation_stages": ["operation", "position", "name", "title", "state", "nodes",
                         "started_at", "finished_at", "error", "node_results"],
    "signed_requests": ["digest", "keep_until"],
    "cluster_health": ["cluster", "state", "since", "checked_at", "detail"],
    "node_health": ["node", "state", "reason", "since", "checked_at"],
}
