"""cluster.delete and node.forget against a real controller, real salt-minions on loopback and
Salt's real key store: what each refuses through salt-run and the REST API alike (changing
nothing), a forced delete run by the real executor to the cluster's end, and a key no node
owns listed, then deleted."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from kubesalt.master.inventory.store import Store

from .controller import BIN, _env, last_json, running
from .node import LoopbackNode
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

OPERATOR = ("oscar", "op-Secret-2718")


@pytest.fixture(scope="module")
def ctl():
    with running("ksd-", [(OPERATOR[0], "operator", OPERATOR[1])]) as controller:
        yield controller


@pytest.fixture(scope="module")
def api(ctl):
    session = ctl.api_session(*OPERATOR)

    def call(fun, **arguments):
        resp = session.post(f"{ctl.api_url}/", json={"client": "runner", "fun": fun,
                                                      **arguments}, timeout=120)
        return resp.status_code, resp.json()["return"][0] if resp.status_code in (200, 400) \
            else resp.text

    return call


@pytest.fixture
def make_node(ctl, tmp_path):
    made = []
    # Salt's IPC socket paths are limited to 107 bytes: node roots stay short.
    base = Path(tempfile.mkdtemp(prefix="ksd-n-"))

    def make(cluster, short_id, enroll=True):
        """A node of `cluster` enrolled with fresh installer credentials (or, with
        enroll=False, a minion that contacts the controller without enrolling), its minion
        started."""
        dest = tmp_path / f"creds-{short_id}"
        ctl.run_ok("cluster.installer", cluster, f"dest={dest}")
        node = LoopbackNode.from_installer(base / short_id, dest, cluster, short_id)
        made.append(node)
        if enroll:
            code, answer = node.enroll()
            assert code == 200, answer
        node.start_minion()
        return node

    yield make
    for node in made:
        node.stop_minion()
    shutil.rmtree(base, ignore_errors=True)


def pki(ctl):
    return ctl.root / "etc" / "salt" / "pki" / "master"


def key_files(ctl, node_id):
    return sorted(p.parent.name for p in pki(ctl).glob(f"minions*/{node_id}"))


def rows(ctl, **filters):
    return {r["id"]: r for r in ctl.run_ok("node.list", *[f"{k}={v}" for k, v in
                                                          filters.items()])}


def both_refuse(ctl, api, fun, field, **arguments):
    """salt-run and the REST API refuse the call for `field`; the messages, which agree."""
    code, out = ctl.run(fun, *[f"{k}={v}" for k, v in arguments.items()])
    assert code == 2 and [e["field"] for e in out["errors"]] == [field], out
    status, answer = api(fun, **arguments)
    assert status == 400 and answer["errors"] == out["errors"], answer
    return out["errors"][0]["message"]


def test_a_cluster_with_a_node_is_refused_and_force_deletes_it_with_its_key(ctl, api,
                                                                            make_node):
    ctl.run_ok("cluster.create", "dnodes")
    node = make_node("dnodes", "dddd0001")
    wait_for(lambda: rows(ctl, cluster="dnodes").get(node.id, {}).get("status") ==
             "DISCOVERED", 60, "the node's key to be pending")
    message = both_refuse(ctl, api, "cluster.delete", "name", name="dnodes")
    assert f"dnodes has 1 enrolled node ({node.id})" in message
    for way_out in ("salt-run cluster.reset dnodes confirm=True", "salt-run node.remove NODE",
                    "salt-run cluster.delete dnodes force=True confirm=True"):
        assert way_out in message
    message = both_refuse(ctl, api, "cluster.delete", "confirm", name="dnodes", force=True)
    assert "salt-run cluster.delete dnodes force=True confirm=True" in message
    # refused: nothing changed
    assert ctl.run_ok("cluster.show", "dnodes")["state"] == "CREATED"
    assert list(rows(ctl, cluster="dnodes")) == [node.id]
    assert key_files(ctl, node.id) == ["minions_pre"]
    # a node whose key was never accepted keeps its agent (the warning says so); stopped
    # here, so that it does not offer its key again once deleted
    node.stop_minion()

    proc = subprocess.run([str(BIN / "salt-run"), "-c", str(ctl.conf_dir), "--out=json",
                           "cluster.delete", "dnodes", "force=True", "confirm=True",
                           "wait=True", "timeout=300"], capture_output=True, text=True,
                          timeout=400, env=_env(), stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    answer = last_json(proc.stdout)
    assert proc.returncode == 0, answer
    assert (answer["deleted"], answer["kind"], answer["state"]) == ("dnodes", "delete", "done")
    assert [(s["stage"], s["state"]) for s in answer["stages"]] == [
        ("reset-nodes", "skipped"), ("remove-agents", "skipped"), ("forget-nodes", "done"),
        ("delete-cluster", "done")]
    assert f"{node.id} never had an accepted key" in answer["warning"]
    assert key_files(ctl, node.id) == []
    assert node.id not in rows(ctl)
    code, out = ctl.run("cluster.status", "dnodes")
    assert code == 2 and out["errors"][0]["field"] == "name"
    assert not (ctl.root / "var" / "lib" / "kubesalt" / "clusters" / "dnodes").exists()


@pytest.fixture
def stand_in_executor():
    """A process standing in for an operation's executor: alive, never progressing."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    yield proc.pid
    proc.kill()
    proc.wait()


def test_a_running_operation_is_refused_naming_cluster_cancel(ctl, api, stand_in_executor):
    ctl.run_ok("cluster.create", "dbusy")
    store = Store(ctl.root / "var" / "lib" / "kubesalt")
    store.create_operation("op-dbusy", "dbusy", "provision",
                           [{"name": "os", "title": "OS", "nodes": ["n1"], "skip": ""}],
                           lambda pid: True)
    store.start_operation("op-dbusy", stand_in_executor)
    for force in (False, True):
        message = both_refuse(ctl, api, "cluster.delete", "name", name="dbusy", force=force,
                              confirm=force)
        assert message == ("provision op-dbusy is running on dbusy; stop it first: "
                           "salt-run cluster.cancel dbusy")
    assert store.operation("op-dbusy")["state"] == "running"
    assert ctl.run_ok("cluster.show", "dbusy")["name"] == "dbusy"


def test_an_empty_cluster_is_deleted_at_once_through_either_door(ctl, api):
    ctl.run_ok("cluster.create", "dempty1")
    ctl.run_ok("cluster.create", "dempty2")
    assert ctl.run_ok("cluster.delete", "dempty1") == {"deleted": "dempty1"}
    assert api("cluster.delete", name="dempty2", force=True, confirm=True) == \
        (200, {"deleted": "dempty2"})
    names = [c["name"] for c in ctl.run_ok("cluster.list")]
    assert "dempty1" not in names and "dempty2" not in names


def test_keys_no_node_owns_are_listed_and_forgotten(ctl, api, make_node):
    ctl.run_ok("cluster.create", "dorph")
    ctl.run_ok("cluster.create", "dauto", "auto_approve=True")
    # a minion that contacted the controller without enrolling: its key waits, pending
    stranger = make_node("dorph", "eeee0001", enroll=False)
    # an accepted key whose record an earlier version's cluster.delete dropped
    left = make_node("dauto", "eeee0002")
    wait_for(lambda: rows(ctl, cluster="dauto").get(left.id, {}).get("connected"), 60,
             "the auto-approved minion to connect")
    Store(ctl.root / "var" / "lib" / "kubesalt").remove_node(left.id)
    wait_for(lambda: key_files(ctl, stranger.id) == ["minions_pre"], 60,
             "the stranger's pending key")
    orphaned = rows(ctl, status="ORPHANED")
    assert (orphaned[stranger.id]["key"], orphaned[left.id]["key"]) == ("pending", "accepted")
    assert orphaned[left.id]["cluster"] is None
    assert f"salt-run node.forget {left.id}" in orphaned[left.id]["hint"]
    assert stranger.id not in rows(ctl, cluster="dorph")

    # node.remove names node.forget; a key named for a cluster blocks its plain delete
    message = both_refuse(ctl, api, "node.remove", "node", node=left.id)
    assert message.endswith(f"holds its accepted key; delete it with salt-run node.forget "
                            f"{left.id}")
    assert f"no node owns ({stranger.id})" in both_refuse(ctl, api, "cluster.delete", "name",
                                                          name="dorph")
    # node.forget refuses a node with a record, and an id with no key
    ctl.run_ok("cluster.create", "dkept")
    kept = make_node("dkept", "eeee0003")
    message = both_refuse(ctl, api, "node.forget", "node", node=kept.id)
    assert message == (f"{kept.id} is a node of cluster dkept; take it out with salt-run "
                       f"node.remove {kept.id}")
    both_refuse(ctl, api, "node.forget", "node", node="node-0000-10-0-0-9-none")
    assert kept.id in rows(ctl, cluster="dkept")

    for minion in (stranger, left):  # else each offers its key again once it is deleted
        minion.stop_minion()
    assert ctl.run_ok("node.forget", stranger.id) == {"node": stranger.id, "forgotten": True,
                                                      "key": "pending"}
    assert api("node.forget", node=left.id) == \
        (200, {"node": left.id, "forgotten": True, "key": "accepted"})
    assert key_files(ctl, stranger.id) == [] and key_files(ctl, left.id) == []
    left_now = rows(ctl)
    assert stranger.id not in left_now and left.id not in left_now
    assert ctl.run_ok("cluster.delete", "dorph") == {"deleted": "dorph"}
