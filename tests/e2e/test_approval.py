"""Discovery and approval with conjurer on every lab node: operator approval and rejection,
then auto-approve, with facts probed from the real nodes."""

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.controller import BIN
from tests.waiting import wait_for

pytestmark = pytest.mark.lab
DEST = "/root/kubesalt"


def enroll_all(lab, controller, cluster, dest):
    def run(node):
        node.push(dest, DEST)
        return node.run(["python3", f"{DEST}/conjurer", f"-edge-name={cluster}",
                         f"-passphrase-file={DEST}/{cluster}-passphrase.txt",
                         f"-creds-file={DEST}/{cluster}.pem"], timeout=600)

    with ThreadPoolExecutor(max_workers=len(lab.nodes)) as pool:
        results = list(pool.map(run, lab.nodes))
    for proc in results:
        assert proc.returncode == 0, proc.stdout + proc.stderr


def statuses(controller, cluster):
    return {r["id"]: r["status"] for r in controller.run_ok("node.list", f"cluster={cluster}")}



@pytest.fixture
def clean_nodes(lab):
    yield lab.nodes

    def clean(node):
        node.run(["python3", f"{DEST}/conjurer", "-d"])
        node.run(["rm", "-rf", DEST])
        node.write("/etc/hostname", node.name + "\n")
        node.run(["hostname", node.name])

    with ThreadPoolExecutor(max_workers=len(lab.nodes)) as pool:
        list(pool.map(clean, lab.nodes))


def test_approve_three_reject_one(lab, lab_controller, tmp_path, clean_nodes):
    lab_controller.run_ok("cluster.create", "appr", "os=debian-12")
    lab_controller.run_ok("cluster.installer", "appr", f"dest={tmp_path}")
    enroll_all(lab, lab_controller, "appr", tmp_path)
    wait_for(lambda: set(statuses(lab_controller, "appr").values()) == {"DISCOVERED"}
             and len(statuses(lab_controller, "appr")) == len(lab.nodes), 60,
             "every node DISCOVERED")
    ids = sorted(statuses(lab_controller, "appr"))
    for node_id in ids[:3]:
        lab_controller.run_ok("node.approve", node_id)
    lab_controller.run_ok("node.reject", ids[3])
    final = statuses(lab_controller, "appr")
    assert [final[i] for i in ids] == ["APPROVED"] * 3 + ["REJECTED"]
    # an approved minion notices its acceptance at its next auth retry (at most
    # acceptance_wait_time_max later), so wait for each to answer rather than ping once
    def answers(node_id):
        ping = subprocess.run([str(BIN / "salt"), "-c", str(lab_controller.conf_dir),
                               "--out=json", "--static", "-t", "5", node_id, "test.ping"],
                              capture_output=True, text=True, timeout=60)
        return f'"{node_id}": true' in ping.stdout

    for node_id in ids[:3]:
        wait_for(lambda n=node_id: answers(n), 60, f"approved {node_id} answers test.ping")
    # the rejected node runs nothing from the controller
    assert not answers(ids[3])


def test_auto_approve_and_probe(lab, lab_controller, tmp_path, clean_nodes):
    lab_controller.run_ok("cluster.create", "auto", "os=debian-12", "auto_approve=True")
    lab_controller.run_ok("cluster.installer", "auto", f"dest={tmp_path}")
    started = time.monotonic()
    enroll_all(lab, lab_controller, "auto", tmp_path)
    wait_for(lambda: set(statuses(lab_controller, "auto").values()) == {"APPROVED"}
             and len(statuses(lab_controller, "auto")) == len(lab.nodes), 10,
             "every node APPROVED within 10 s of conjurer finishing")
    assert time.monotonic() - started < 300

    def probed(node_id):
        shown = lab_controller.run_ok("node.show", node_id)
        return shown if shown.get("facts", {}).get("kubesalt_interfaces") else None

    for node_id in statuses(lab_controller, "auto"):
        shown = wait_for(lambda n=node_id: probed(n), 120, f"{node_id}'s facts")
        assert shown["facts"]["os"] == "Debian"
        host0 = [i for i in shown["facts"]["kubesalt_interfaces"] if i["name"] == "host0"]
        assert host0 and host0[0]["ipv4"] == [shown["address"]]
