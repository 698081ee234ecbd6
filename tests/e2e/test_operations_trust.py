"""Operations an operator can trust, on lab nodes: a running operation cancelled while another
cluster's goes on; an agent killed during a stage noticed in seconds instead of at the stage's
timeout, and one restarted by systemd whose lost job is sent again; each ends READY. A
cluster with nodes or a running operation is not deleted, unless forced: then its node keeps
nothing of kubesalt. A long
stage is held by the kubeadm stand-in (hold-kubeadm-init marker) so that each happens
mid-stage."""


import subprocess

import pytest

from tests.e2e.cleanliness import assert_no_key, assert_node_clean, wait_until_agent_gone
from tests.e2e.test_provision import K8S, MARKERS, configure, enroll, provision, refused
from tests.integration.controller import BIN, _env, last_json
from tests.labkit import artifacts as lab_artifacts
from tests.waiting import wait_for

pytestmark = pytest.mark.lab
HOLD = f"{MARKERS}/hold-kubeadm-init"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    source = tmp_path_factory.mktemp("artifacts")
    lab_artifacts.build(source, K8S)
    return source


def operation(ctl, cluster):
    return ctl.cluster_status(cluster)["operation"]


def stage_running(ctl, cluster, stage):
    op = operation(ctl, cluster)
    return any(s["stage"] == stage and s["state"] == "running" for s in op["stages"])


def ended(ctl, cluster):
    op = operation(ctl, cluster)
    return op if op["state"] in ("done", "failed", "cancelled") else None


def test_cancel_a_lost_agent_and_a_restarted_one_are_handled_in_seconds(
        lab, lab_controller, tmp_path, artifacts):
    ctl = lab_controller
    lab.renew()
    ctl.run_ok("artifacts.sync", K8S, f"source={artifacts}")
    names = ["cancel1", "other1", "lost1", "restart1"]
    ids = {}
    for name, node in zip(names, lab.nodes, strict=True):
        [ids[name]] = enroll(lab, ctl, name, [node], tmp_path / name, blueprint="minimal",
                             pod_subnet="10.250.0.0/16", service_subnet="10.112.0.0/12")
        configure(ctl, [ids[name]], ["master,worker"])
    nodes = dict(zip(names, lab.nodes, strict=True))
    for name in ("cancel1", "lost1", "restart1"):
        nodes[name].write(HOLD, "")
    for name in names:
        ctl.run_ok("cluster.provision", name)
    for name in ("cancel1", "lost1", "restart1"):
        wait_for(lambda name=name: stage_running(ctl, name, "control-plane-init"), 600,
                 f"{name}'s control-plane-init to run")

    # delete: refused while an operation runs, even forced
    assert "salt-run cluster.cancel cancel1" in refused(ctl, "cluster.delete", "cancel1",
                                                        "force=True", "confirm=True")

    # cancel: the operation ends cancelled at its stage, the node's job is ended
    ctl.run_ok("cluster.cancel", "cancel1")
    cancelled = wait_for(lambda: ended(ctl, "cancel1"), 15, "cancel1 to be cancelled",
                         interval=0.5)
    assert (cancelled["state"], cancelled["failed_stage"]) == ("cancelled", "control-plane-init")
    wait_for(lambda: nodes["cancel1"].run(["pgrep", "-f", "kubeadm init"]).returncode == 1, 15,
             "the held kubeadm init to be ended")

    # an agent killed (it stays down): the stage fails within 45 s naming the node
    nodes["lost1"].run(["systemctl", "kill", "kubesalt-minion"], check=True)
    lost = wait_for(lambda: ended(ctl, "lost1"), 45, "lost1's operation to fail", interval=0.5)
    assert (lost["state"], lost["failed_stage"], lost["failed_node"]) == \
        ("failed", "control-plane-init", ids["lost1"]), lost
    assert "agent disconnected" in lost["error"]

    # an agent killed and restarted by systemd (RestartSec=5): its job died with it, and the
    # executor sends it again at once instead of waiting out the stage's 600 s timeout
    node = nodes["restart1"]
    node.run(["systemctl", "kill", "-s", "KILL", "kubesalt-minion"], check=True)
    wait_for(lambda: node.run(["pgrep", "-f", "kubeadm init"]).returncode == 1, 15,
             "the job to die with the agent", interval=0.5)
    wait_for(lambda: node.run(["pgrep", "-f", "kubeadm init"]).returncode == 0, 60,
             "the stage's job to be sent again", interval=0.5)
    assert operation(ctl, "restart1")["state"] == "running"

    # the other cluster's operation, running all along, finished untouched
    other = wait_for(lambda: ended(ctl, "other1"), 900, "other1's operation to end",
                     interval=3)
    assert other["state"] == "done", other
    assert ctl.run_ok("cluster.status", "other1")["state"] == "READY"

    # each resumes to READY once its node is back, running only what did not finish
    nodes["lost1"].run(["systemctl", "start", "kubesalt-minion"], check=True)
    wait_for(lambda: ctl.run_ok("node.show", ids["lost1"]).get("connected"), 60,
             "lost1's agent to reconnect")
    for name in ("cancel1", "lost1", "restart1"):
        nodes[name].run(["rm", "-f", HOLD], check=True)
    # the restarted agent's operation finishes by itself
    restarted = wait_for(lambda: ended(ctl, "restart1"), 600, "restart1's operation to end",
                         interval=3)
    assert restarted["state"] == "done", restarted
    assert ctl.run_ok("cluster.status", "restart1")["state"] == "READY"
    for name in ("cancel1", "lost1"):
        status = provision(ctl, name)
        assert status["state"] == "READY", status
        states = {s["stage"]: s["state"] for s in status["operation"]["stages"]}
        assert states["containerd"] == "skipped" and states["control-plane-init"] == "done", \
            states

    # delete: refused for a cluster with nodes; forced, its node keeps nothing of kubesalt
    assert "force=True confirm=True" in refused(ctl, "cluster.delete", "other1")
    assert ctl.run_ok("cluster.show", "other1")["state"] == "READY"
    proc = subprocess.run([str(BIN / "salt-run"), "-c", str(ctl.conf_dir), "--out=json",
                           "cluster.delete", "other1", "force=True", "confirm=True", "wait=True",
                           "timeout=900"], capture_output=True, text=True, timeout=1000,
                          env=_env(), stdin=subprocess.DEVNULL)
    deleted = last_json(proc.stdout)
    assert proc.returncode == 0 and deleted["deleted"] == "other1", (proc.stdout, proc.stderr)
    assert "other1" not in [c["name"] for c in ctl.run_ok("cluster.list")]
    wait_until_agent_gone(nodes["other1"])
    assert_node_clean(nodes["other1"])
    assert_no_key(ctl, ids["other1"])
