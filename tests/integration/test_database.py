"""A real controller with its records in PostgreSQL (`init --database`), one moved there from
SQLite (`migrate-database`), and the refusals of both, against the tests' PostgreSQL server."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from kubesalt.master.inventory.storage import location
from kubesalt.master.inventory.store import Store
from tests import postgres
from tests.specs import cluster_spec

from .controller import Controller, free_ports

pytestmark = pytest.mark.integration


@pytest.fixture
def ctl():
    controller = Controller(tempfile.mkdtemp(prefix="ksdb-"))
    yield controller
    controller.stop()
    shutil.rmtree(controller.root, ignore_errors=True)


def _state_dir(ctl):
    return ctl.root / "var" / "lib" / "kubesalt"


def _files_holding(root, secret):
    """The files under `root` whose bytes contain `secret`."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink() and \
                    secret.encode() in path.read_bytes():
                found.append(path)
    return found


def test_a_controller_keeps_its_records_in_postgresql_across_a_restart(ctl, postgres_server):
    database = postgres_server.create_database()
    url = postgres_server.url(database)
    init = ctl.init("--database", url)
    assert postgres.ROLE_PASSWORD not in init.stdout + init.stderr
    assert json.loads(init.stdout)["database"] == \
        f"PostgreSQL {url.replace(postgres.ROLE_PASSWORD, '***')}"
    assert not (_state_dir(ctl) / "kubesalt.db").exists()
    ctl.start()
    ctl.run_ok("cluster.create", "pg1", "labels={site: north}")
    ctl.run_ok("cluster.installer", "pg1", f"dest={ctl.root / 'creds'}")
    ctl.stop()
    ctl.init()  # re-running init without --database keeps PostgreSQL
    started = ctl.start()
    assert postgres.ROLE_PASSWORD not in json.dumps(started)
    assert [c["name"] for c in ctl.run_ok("cluster.list")] == ["pg1"]
    assert ctl.run_ok("cluster.show", "pg1")["labels"] == {"site": "north"}
    # the records are in the server, not in a file beside the master
    assert postgres_server.admin("SELECT name FROM clusters", database) == [("pg1",)]
    assert len(postgres_server.admin("SELECT serial FROM installers", database)) == 1
    _, status = ctl.status()
    assert status["database"].startswith("PostgreSQL postgresql://kubesalt:***@")
    # the password: in the one 0600 file, in no log, job return or configuration
    holding = _files_holding(ctl.root, postgres.ROLE_PASSWORD)
    assert holding == [_state_dir(ctl) / location.FILE]
    assert holding[0].stat().st_mode & 0o777 == 0o600


def test_init_refuses_a_database_it_cannot_use_and_writes_nothing(ctl, postgres_server):
    database = postgres_server.create_database()
    good = postgres_server.url(database)
    nobody_listens = good.replace(f":{postgres_server.port}/", f":{free_ports(1)[0]}/")
    cases = [("mysql://kubesalt:pw@127.0.0.1/ks", "is not a PostgreSQL URL"),
             (nobody_listens, "does not answer"),
             (good.replace(postgres.ROLE_PASSWORD, "Wrong-pw"), "password authentication"),
             (good.rsplit("/", 1)[0] + "/absent", "does not exist")]
    for url, says in cases:
        proc = ctl.ctl("init", "--database", url, check=False)
        assert proc.returncode == 1, (url, proc.stdout)
        assert proc.stderr.startswith("kubesalt-controller: --database: "), proc.stderr
        assert says in proc.stderr and "Traceback" not in proc.stderr
        for secret in (postgres.ROLE_PASSWORD, "Wrong-pw", ":pw@"):
            assert secret not in proc.stdout + proc.stderr
        assert not ctl.root.joinpath("etc").exists() and not _state_dir(ctl).exists()


def _every_record(store):
    """Everything a controller has recorded, as the store reads it back."""
    with store.reading() as conn:
        remembered = sorted(tuple(r) for r in conn.execute("SELECT * FROM signed_requests"))
    clusters = store.list_clusters()
    return {"clusters": clusters,
            "installers": {c["name"]: store.installers(c["name"]) for c in clusters},
            "nodes": store.list_nodes(),
            "operations": {c["name"]: store.operations(c["name"]) for c in clusters},
            "cluster_health": store.cluster_health(), "node_health": store.node_health(),
            "signed_requests": remembered}


def _record_one_of_everything(store):
    store.create_cluster("m1", cluster_spec(name="m1", labels={"env": "prod"}))
    store.create_cluster("m2", cluster_spec(name="m2"))
    store.add_installer("m1", "0a1b", time.time() - 60, time.time() + 3600)
    store.add_installer("m1", "0a1c", time.time(), time.time() + 3600, rotate=True)
    store.enroll_node("node-1", "m1", "ab" * 32, "0a1c", "10.0.0.1",
                      facts={"os": "debian", "num_cpus": 4})
    store.enroll_node("node-2", "m1", "cd" * 32, "0a1c", "10.0.0.2")
    store.set_node_config("node-1", {"roles": ["master"]})
    stages = [{"name": "etcd", "title": "Start etcd", "nodes": ["node-1"], "skip": ""},
              {"name": "ready", "title": "Mark READY", "nodes": [], "skip": "not needed"}]
    store.create_operation("op-1", "m1", "provision", stages, lambda pid: True,
                           params={"version": "1.30.10"})
    store.start_operation("op-1", 1)
    store.record_stage("op-1", "etcd", "failed", 10.5, 12.25, "broken",
                       {"node-1": {"state": "failed", "error": "broken"}})
    store.finish_operation("op-1", False, "broken", "etcd", "node-1")
    store.record_health("m1", "DEGRADED", {"ready": 1}, {"node-1": ("READY", None),
                                                         "node-2": ("DOWN", "no answer")})
    assert store.remember_request("f" * 64, time.time() + 600)


def test_migrate_database_moves_every_record_and_the_controller_uses_postgresql(
        ctl, postgres_server):
    ctl.init()
    ctl.start()
    ctl.run_ok("cluster.create", "edge1")
    store = Store(_state_dir(ctl))
    _record_one_of_everything(store)
    # stopped, so that the health checks change nothing between the two readings
    ctl.stop()
    before = _every_record(store)
    assert all(before.values())
    database = postgres_server.create_database()
    url = postgres_server.url(database)
    # the password from a file, off the command line
    password_file = ctl.root / "db.pw"
    password_file.write_text(postgres.ROLE_PASSWORD + "\n")
    bare = url.replace(f":{postgres.ROLE_PASSWORD}@", "@")

    proc = ctl.ctl("migrate-database", bare, "--password-file", str(password_file))
    assert postgres.ROLE_PASSWORD not in proc.stdout + proc.stderr
    moved = json.loads(proc.stdout)
    assert moved["restarted"] is False
    assert moved["copied"] == {"clusters": 3, "installers": 2, "nodes": 2, "operations": 1,
                               "operation_stages": 2, "signed_requests": 1,
                               "cluster_health": len(before["cluster_health"]),
                               "node_health": 2}
    assert location.configured(_state_dir(ctl)) == url
    assert Path(moved["sqlite_kept_as"]).exists()
    assert not (_state_dir(ctl) / "kubesalt.db").exists()

    after = Store(_state_dir(ctl))
    assert after.database.dialect == "postgresql"
    assert _every_record(after) == before
    # the controller answers from PostgreSQL
    ctl.start()
    assert [c["name"] for c in ctl.run_ok("cluster.list")] == ["edge1", "m1", "m2"]
    ctl.run_ok("cluster.create", "edge3")
    assert postgres_server.admin("SELECT count(*) FROM clusters", database) == [(4,)]

    again = ctl.ctl("migrate-database", url, check=False)
    assert again.returncode == 1 and "already, not in SQLite" in again.stderr


def test_migrate_database_refuses_a_running_operation_or_a_full_database_then_restarts(
        ctl, postgres_server):
    ctl.init()
    store = Store(_state_dir(ctl))
    store.create_cluster("busy", cluster_spec(name="busy"))
    store.create_operation("op-busy", "busy", "provision",
                           [{"name": "etcd", "title": "etcd", "nodes": [], "skip": ""}],
                           lambda pid: True)
    executor = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        store.start_operation("op-busy", executor.pid)
        url = postgres_server.url(postgres_server.create_database())
        proc = ctl.ctl("migrate-database", url, check=False)
    finally:
        executor.kill()
        executor.wait()
    assert proc.returncode == 1 and "operation op-busy is running" in proc.stderr
    assert location.configured(_state_dir(ctl)) is None

    taken = postgres_server.create_database()
    other = Controller(tempfile.mkdtemp(prefix="ksdb-"))
    try:
        other.init("--database", postgres_server.url(taken))
        Store(other.root / "var" / "lib" / "kubesalt").create_cluster("theirs", {})
    finally:
        shutil.rmtree(other.root, ignore_errors=True)
    proc = ctl.ctl("migrate-database", postgres_server.url(taken), check=False)
    assert proc.returncode == 1 and "holds kubesalt records already (1 clusters)" in proc.stderr
    assert postgres.ROLE_PASSWORD not in proc.stderr
    assert location.configured(_state_dir(ctl)) is None
    assert Store(_state_dir(ctl)).get_cluster("busy")

    # once nothing runs, a running controller is stopped for the move and started again
    ctl.start()
    url = postgres_server.url(postgres_server.create_database())
    moved = json.loads(ctl.ctl("migrate-database", url).stdout)
    assert moved["restarted"] is True and moved["copied"]["operations"] == 1
    assert ctl.status()[1]["running"] is True
    assert [c["name"] for c in ctl.run_ok("cluster.list")] == ["busy"]
