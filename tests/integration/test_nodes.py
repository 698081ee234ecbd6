"""Enrollment, discovery, approval, rejection, probing and configuration against a real
controller and real salt-minions on loopback."""

import datetime
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from kubesalt.master.trust import pki
from kubesalt.master.inventory.store import Store
from kubesalt.master.layout import Layout
from kubesalt.minion_bootstrap import cli as conjurer_cli
from kubesalt.minion_bootstrap import credentials, facts, prechecks

from .controller import BIN
from tests.waiting import wait_for

from .node import LoopbackNode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clusters(controller, tmp_path_factory):
    creds = {}
    for name, auto in (("appr", False), ("auto", True), ("other", False)):
        controller.run_ok("cluster.create", name, f"auto_approve={auto}")
        dest = tmp_path_factory.mktemp(f"creds-{name}")
        controller.run_ok("cluster.installer", name, f"dest={dest}")
        creds[name] = ((dest / f"{name}.pem").read_text(),
                       (dest / f"{name}-passphrase.txt").read_text().strip())
    return creds


@pytest.fixture
def make_node(clusters):
    made = []
    # Salt's IPC sockets live under the root and a Unix socket path is limited to 107 bytes,
    # so node roots stay short rather than under pytest's deep tmp_path.
    base = Path(tempfile.mkdtemp(prefix="ksn-"))

    def make(cluster, short_id):
        text, passphrase = clusters[cluster]
        node = LoopbackNode(base / short_id, f"node-{short_id}-127-0-0-1-{cluster}", text,
                            passphrase, cluster)
        node.generate_keys()
        made.append(node)
        return node

    yield make
    for node in made:
        node.stop_minion()
    shutil.rmtree(base, ignore_errors=True)


def status_of(controller, node_id):
    rows = controller.run_ok("node.list", f"search={node_id}")
    return rows[0]["status"] if rows else None


def test_discover_approve_probe_configure(controller, make_node):
    node = make_node("appr", "aaaa0001")
    reported = facts.gather(prechecks.Context())  # what conjurer on this machine reports
    code, answer = node.enroll(facts=reported)
    assert code == 200, answer
    assert status_of(controller, node.id) == "ENROLLED"
    node.start_minion()
    wait_for(lambda: status_of(controller, node.id) == "DISCOVERED", 30, "DISCOVERED")
    # Before approval nothing is probed: what the node reported is what there is to see.
    discovered = controller.run_ok("node.show", node.id)
    assert discovered["reported_facts"] == reported and discovered["facts"] == {}
    assert "reported_facts" not in controller.run_ok("node.list", "cluster=appr")[0]
    approved = controller.run_ok("node.approve", node.id)
    assert approved["status"] == "APPROVED", approved
    assert status_of(controller, node.id) == "APPROVED"
    def probed():
        shown = controller.run_ok("node.show", node.id)
        return shown if shown.get("facts", {}).get("kubesalt_interfaces") else None

    shown = wait_for(probed, 90, "probed facts")
    assert shown["connected"] is True
    assert {"os", "kernelrelease", "cpuarch", "num_cpus", "mem_total",
            "kubesalt_disks"} <= set(shown["facts"])
    iface = next(i["name"] for i in shown["facts"]["kubesalt_interfaces"] if i["ipv4"])
    for args, field in (
            (["roles=chef", f"interface={iface}"], "roles"),
            (["roles=worker", "interface=nope0"], "interface"),
            (["roles=storage", f"interface={iface}", "storage_devices=/dev/nope"],
             "storage_devices"),
    ):
        code, out = controller.run("node.configure", node.id, *args)
        assert code != 0 and field in [e["field"] for e in out["errors"]]
        assert controller.run_ok("node.show", node.id)["config"] is None
    out = controller.run_ok("node.configure", node.id, "roles=master", f"interface={iface}")
    assert out["config"]["roles"] == ["master", "worker"]  # converged cluster
    # The node's pillar now carries its role (values are masked in Salt's output, keys not).
    salt = [str(BIN / "salt"), "-c", str(controller.conf_dir), "--out=json", node.id]
    subprocess.run(salt + ["saltutil.refresh_pillar", "wait=True"], capture_output=True,
                   timeout=60, check=True)
    keys = subprocess.run(salt + ["pillar.keys", "kubesalt:node"], capture_output=True,
                          text=True, timeout=60)
    assert "roles" in keys.stdout and "interface" in keys.stdout


def test_auto_approve_needs_no_operator(controller, make_node):
    node = make_node("auto", "aaaa0002")
    code, answer = node.enroll()
    assert (code, answer["status"]) == (200, "APPROVED")
    node.start_minion()
    wait_for(lambda: controller.run_ok("node.show", node.id).get("connected"), 60,
             "the auto-approved minion to connect")
    assert status_of(controller, node.id) == "APPROVED"


def test_rejected_node_runs_nothing(controller, make_node):
    node = make_node("appr", "aaaa0003")
    assert node.enroll()[0] == 200
    node.start_minion()
    wait_for(lambda: status_of(controller, node.id) == "DISCOVERED", 30, "DISCOVERED")
    assert controller.run_ok("node.reject", node.id)["status"] == "REJECTED"
    assert status_of(controller, node.id) == "REJECTED"
    ping = subprocess.run([str(BIN / "salt"), "-c", str(controller.conf_dir), "--out=json",
                           "-t", "5", node.id, "test.ping"], capture_output=True, text=True,
                          timeout=60)
    assert "true" not in ping.stdout.lower()
    code, out = controller.run("node.approve", node.id)
    assert code != 0 and "rejected" in out["errors"][0]["message"]


def test_other_clusters_credentials_never_enroll(controller, make_node, clusters):
    node = make_node("appr", "aaaa0004")
    text, passphrase = clusters["other"]
    other = credentials.open_credentials(text, passphrase, "other")
    # signed with cluster "other"'s installer key but claiming cluster "appr"
    request, _ = node.creds.enrollment_request(node.id, (node.pki_dir / "minion.pub")
                                               .read_text(), time.time())
    forged = credentials.Credentials.__new__(credentials.Credentials)
    forged.__dict__.update(other.__dict__)
    forged.cluster = "appr"
    code, answer = node.enroll(creds=forged)
    assert code == 403 and answer["reason"] in ("wrong-cluster", "untrusted")
    assert status_of(controller, node.id) is None
    assert request["cluster"] == "appr"


def test_expired_credentials_never_enroll(controller, make_node, clusters):
    ca = pki.ensure_ca(controller.root / "var/lib/kubesalt/pki")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    issued = pki.issue_installer(ca, "appr", 1, now=past)
    Store(controller.root / "var/lib/kubesalt").add_installer(
        "appr", issued.serial, past.timestamp(), issued.not_after.timestamp())
    current = credentials.open_credentials(*clusters["appr"], "appr")
    passphrase = credentials.generate_passphrase()
    text = credentials.seal("appr", current.controller, ca.cert_pem, issued.cert_pem,
                            issued.serial, issued.not_after, issued.private_numbers, passphrase)
    with pytest.raises(credentials.ExpiredCredentials):
        credentials.open_credentials(text, passphrase, "appr")
    expired = credentials.open_credentials(text, passphrase, "appr",
                                           now=past + datetime.timedelta(hours=1))
    node = make_node("appr", "aaaa0005")
    code, answer = node.enroll(creds=expired)
    assert code == 403 and answer["reason"] == "expired"
    assert status_of(controller, node.id) is None


def test_rotation_revokes_earlier_credentials(controller, tmp_path):
    controller.run_ok("cluster.create", "rot")
    old = controller.run_ok("cluster.installer", "rot", f"dest={tmp_path / 'old'}")
    kept = controller.run_ok("cluster.installer", "rot", f"dest={tmp_path / 'kept'}")
    assert kept["revoked"] == []  # issuing more sets does not revoke without rotate
    new = controller.run_ok("cluster.installer", "rot", f"dest={tmp_path / 'new'}",
                            "rotate=True")
    assert sorted(new["revoked"]) == sorted([old["serial"], kept["serial"]])

    def opened(name):
        return credentials.open_credentials((tmp_path / name / "rot.pem").read_text(),
                                            (tmp_path / name / "rot-passphrase.txt")
                                            .read_text().strip(), "rot")

    node_id = "node-cccc0001-127-0-0-1-rot"
    with pytest.raises(conjurer_cli.EnrollError, match="revoked"):
        conjurer_cli.check_installer(opened("old"), node_id)
    assert conjurer_cli.check_installer(opened("new"), node_id)["ok"] is True
    # the controller refuses the old set at enrollment too, and records nothing
    base = Path(tempfile.mkdtemp(prefix="ksn-"))
    try:
        node = LoopbackNode(base / "n", node_id, (tmp_path / "old/rot.pem").read_text(),
                            (tmp_path / "old/rot-passphrase.txt").read_text().strip(), "rot")
        node.generate_keys()
        code, answer = node.enroll()
        assert code == 403 and answer["reason"] == "revoked"
        assert controller.run_ok("node.list", "cluster=rot") == []
        code, answer = node.enroll(creds=opened("new"))
        assert code == 200 and answer["status"] == "DISCOVERED"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_list_filters_and_sorts(controller, make_node):
    ids = []
    for short in ("bbbb0002", "bbbb0001", "bbbb0003"):
        node = make_node("other", short)
        assert node.enroll()[0] == 200
        ids.append(node.id)
    rows = controller.run_ok("node.list", "cluster=other", "sort=hostname")
    assert [r["id"] for r in rows] == sorted(ids)
    rows = controller.run_ok("node.list", "cluster=other", "sort=-hostname")
    assert [r["id"] for r in rows] == sorted(ids, reverse=True)
    rows = controller.run_ok("node.list", "cluster=other", "sort=created")
    assert [r["id"] for r in rows] == ids
    # a page of the sorted rows, as an operator types it
    rows = controller.run_ok("node.list", "cluster=other", "sort=created", "limit=1", "offset=1")
    assert [r["id"] for r in rows] == ids[1:2]
    rows = controller.run_ok("node.list", "cluster=other", "sort=created", "offset=0")
    assert [r["id"] for r in rows] == ids
    assert [r["id"] for r in controller.run_ok("node.list", "search=bbbb0003")] == [ids[2]]
    assert controller.run_ok("node.list", "cluster=other", "status=APPROVED") == []
    code, out = controller.run("node.list", "sort=size")
    assert code != 0 and out["errors"][0]["field"] == "sort"


def test_health_follows_the_agents_and_fires_events(controller, make_node):
    """cluster.health asks the agents now; a stopped agent makes the cluster down (its only
    node), a restarted one healthy again, each change an event on the bus."""
    controller.run_ok("cluster.create", "hlth", "auto_approve=True")
    dest = Path(tempfile.mkdtemp(prefix="ksh-"))
    controller.run_ok("cluster.installer", "hlth", f"dest={dest}")
    node = LoopbackNode.from_installer(dest / "n", dest, "hlth", "hhhh0001")
    try:
        assert controller.run_ok("cluster.health", "hlth")["state"] == "unknown"
        assert node.enroll()[0] == 200
        node.start_minion()
        # the controller's own checks (the kubesalt_health engine) find it, unasked
        wait_for(lambda: controller.run_ok("cluster.show", "hlth")["health"]["state"] ==
                 "healthy", 60, "the health engine to find the cluster's only node")
        shown = controller.run_ok("cluster.list")
        assert [c["health"]["problems"] for c in shown if c["name"] == "hlth"] == [[]]
        assert controller.run_ok("node.show", node.id)["health"]["state"] == "healthy"

        with controller.events("kubesalt/cluster/hlth/health") as events:
            node.stop_minion()
            health = controller.run_ok("cluster.health", "hlth")
            assert health["state"] == "down"
            assert health["problems"] == [{"node": node.id, "state": "disconnected",
                                           "reason": "its agent did not answer the controller",
                                           "since": health["since"]}]
            assert events.wait_for(lambda e: e["data"]["state"] == "down", 30)["data"][
                "previous"] == "healthy"
        listed = controller.run_ok("node.list", "cluster=hlth")
        assert listed[0]["health"]["state"] == "disconnected"
        node.start_minion()
        wait_for(lambda: controller.run_ok("cluster.health", "hlth")["state"] == "healthy",
                 60, "the restarted agent to answer")
    finally:
        node.stop_minion()
        shutil.rmtree(dest, ignore_errors=True)


def test_the_check_names_a_key_that_holds_the_node_id(controller, make_node):
    """A minion kubesalt never enrolled (a customer's, say) connects under a node's id: the
    check conjurer makes before changing anything refuses that id; the minion whose key it is
    passes once enrolled, and learns its cluster's os."""
    minion = make_node("appr", "aaaa0011")
    minion.start_minion()
    pending = Layout.for_root(controller.root).pki_dir / "minions_pre" / minion.id
    wait_for(pending.exists, 30, "the never-enrolled minion's key to be pending")
    with pytest.raises(conjurer_cli.EnrollError) as refused:
        conjurer_cli.check_installer(minion.creds, minion.id)  # a fresh node holds no key
    assert refused.value.reason == "id-in-use"
    assert str(refused.value).startswith(f"a key with the id {minion.id} is already pending "
                                         "on the controller and it is not this node's")
    assert f"salt-run node.forget {minion.id}" in str(refused.value)
    assert minion.enroll()[0] == 200
    held = (minion.pki_dir / "minion.pub").read_text()
    answer = conjurer_cli.check_installer(minion.creds, minion.id, held)
    assert answer["os"] == controller.run_ok("cluster.show", "appr")["os"]
    with pytest.raises(conjurer_cli.EnrollError) as again:
        conjurer_cli.check_installer(minion.creds, minion.id)
    assert str(again.value).startswith(f"{minion.id} is already a node of cluster appr with "
                                       "another key (pending on the controller)")
