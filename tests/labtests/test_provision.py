"""Provisioning end to end on lab nodes: conjurer, auto-approve, roles, `cluster.provision`,
READY; real salt, real etcd and containerd, stand-in kubeadm/kubelet/kubectl/consul/crictl.
Each test starts from freshly booted nodes."""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.controller import BIN
from tests.lab import artifacts as lab_artifacts
from tests.waiting import wait_for

pytestmark = pytest.mark.lab
DEST = "/root/kubesalt"
K8S = "1.29.14"
MARKERS = "/etc/kubesalt-standin"


@pytest.fixture(scope="module")
def artifact_source(tmp_path_factory):
    source = tmp_path_factory.mktemp("artifacts")
    lab_artifacts.build(source, K8S)
    return source


@pytest.fixture
def fresh_nodes(lab):
    lab.renew()
    yield lab.nodes
    lab.renew()


def enroll(lab, controller, cluster, nodes, dest, **settings):
    """Create `cluster` (auto-approve) and enroll `nodes` into it; their ids in node order."""
    args = [f"{k}={v}" for k, v in settings.items()]
    controller.run_ok("cluster.create", cluster, "os=debian-12", f"k8s_version={K8S}",
                      "auto_approve=True", *args)
    controller.run_ok("cluster.installer", cluster, f"dest={dest}")
    return join(controller, cluster, nodes, dest)


def join(controller, cluster, nodes, dest):
    """Run conjurer on `nodes` at once with the installer files in `dest`; wait until each is
    APPROVED and probed; their ids in node order."""
    def run(node):
        node.push(dest, DEST)
        return node.run(["python3", f"{DEST}/conjurer", f"-edge-name={cluster}",
                         f"-passphrase-file={DEST}/{cluster}-passphrase.txt",
                         f"-creds-file={DEST}/{cluster}.pem"], timeout=600)

    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        for proc in pool.map(run, nodes):
            assert proc.returncode == 0, proc.stdout + proc.stderr
    addresses = {n.address for n in nodes}

    def probed():
        rows = [r for r in controller.run_ok("node.list", f"cluster={cluster}")
                if r["address"] in addresses]
        if len(rows) != len(nodes) or {r["status"] for r in rows} != {"APPROVED"}:
            return None
        shown = [controller.run_ok("node.show", r["id"]) for r in rows]
        return shown if all(s.get("facts", {}).get("kubesalt_interfaces") for s in shown) \
            else None

    shown = wait_for(probed, 180, f"{len(nodes)} approved, probed nodes")
    by_address = {s["address"]: s["id"] for s in shown}
    return [by_address[n.address] for n in nodes]


def configure(controller, ids, roles):
    for node_id, role in zip(ids, roles, strict=True):
        controller.run_ok("node.configure", node_id, f"roles={role}", "interface=host0")


def provision(controller, cluster, timeout=1500):
    """Start provisioning and wait for the operation to end; returns cluster.status."""
    started = controller.run_ok("cluster.provision", cluster)

    def ended():
        status = controller.run_ok("cluster.status", cluster)
        op = status["operation"]
        return status if op["operation"] == started["operation"] and \
            op["state"] in ("done", "failed") else None

    return wait_for(ended, timeout, f"{cluster}'s provisioning to end", interval=3)


def salt(controller, *args, timeout=600):
    proc = subprocess.run([str(BIN / "salt"), "-c", str(controller.conf_dir), "--out=json",
                           "--static", "-t", str(timeout - 60), *args], capture_output=True,
                          text=True, timeout=timeout)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"salt {args}: {proc.stdout}\n{proc.stderr}") from None


def changed_states(controller, ids, sls):
    """Apply `sls` again on `ids`: every state that failed or changed something."""
    result = salt(controller, "-L", ",".join(ids), "state.sls", sls)
    changed = {}
    for node_id in ids:
        states = result.get(node_id)
        assert isinstance(states, dict), f"{node_id}: {states}"
        pending = [s["__id__"] for s in states.values()
                   if s.get("result") is not True or s.get("changes")]
        if pending:
            changed[node_id] = pending
    return changed


def kubectl(node, *args):
    proc = node.run(["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", *args, "-o",
                     "json"], check=True)
    return json.loads(proc.stdout)


def test_converged_single_survives_a_restart_then_grows(lab, lab_controller, tmp_path,
                                                        fresh_nodes, artifact_source):
    ctl, node = lab_controller, lab.nodes[0]
    ctl.run_ok("artifacts.sync", K8S, f"source={artifact_source}")
    [node_id] = enroll(lab, ctl, "solo", [node], tmp_path / "creds", blueprint="minimal",
                       pod_subnet="10.250.0.0/16", service_subnet="10.112.0.0/12")
    configure(ctl, [node_id], ["master,worker"])
    first = ctl.run_ok("cluster.provision", "solo")["operation"]

    def running(stage_names):
        op = ctl.run_ok("cluster.status", "solo")["operation"]
        return any(s["stage"] in stage_names and s["state"] == "running" for s in op["stages"])

    # restart the controller in the middle of the operation: the operation is recorded as
    # interrupted at its running stage, and a rerun resumes there
    wait_for(lambda: running({"binaries", "containerd", "consul"}), 300, "a stage to run")
    ctl.stop()
    ctl.start()
    status = ctl.run_ok("cluster.status", "solo", "history=True")
    [interrupted] = status["operations"]
    assert interrupted["operation"] == first and interrupted["state"] == "failed"
    assert interrupted["failed_stage"] in {"binaries", "containerd", "consul"}
    assert "controller stopped" in interrupted["error"]
    done = {s["stage"] for s in interrupted["stages"] if s["state"] == "done"}
    assert {"prechecks", "os"} <= done
    status = provision(ctl, "solo")
    resumed = {s["stage"]: s["state"] for s in status["operation"]["stages"]}
    assert all(resumed[stage] == "skipped" for stage in done), resumed
    assert status["state"] == "READY", status
    stages = {s["stage"]: s for s in status["operation"]["stages"]}
    assert stages["control-plane-init"]["state"] == "done"
    assert stages["control-plane-init"]["nodes"] == [node_id]
    assert stages["control-plane-join"]["state"] == "skipped"
    assert all(s["duration_s"] is not None for s in stages.values() if s["state"] == "done")
    assert {r["status"] for r in ctl.run_ok("node.list", "cluster=solo")} == {"READY"}
    # what the states leave on the node
    config = node.read("/etc/kubesalt/kubeadm-config.yaml")
    assert "podSubnet: 10.250.0.0/16" in config and "serviceSubnet: 10.112.0.0/12" in config
    assert "SystemdCgroup = true" in node.read("/etc/containerd/config.toml")
    assert node.run(["systemctl", "is-active", "containerd", "etcd", "kubelet",
                     "consul"]).stdout.split() == ["active"] * 4
    members = node.run(["etcdctl", "--endpoints", f"https://{node.address}:2379", "--cacert",
                        "/etc/etcd/pki/ca.crt", "--cert", "/etc/etcd/pki/server.crt",
                        "--key", "/etc/etcd/pki/server.key", "member", "list"], check=True)
    assert members.stdout.count("started") == 1
    [k8s_node] = kubectl(node, "get", "nodes")["items"]
    assert not k8s_node["spec"].get("taints"), "a converged master is untainted"
    # every stage is idempotent: applying them again changes nothing
    assert changed_states(ctl, [node_id], "kubesalt.os,kubesalt.binaries,kubesalt.containerd,"
                          "kubesalt.consul,kubesalt.etcd,kubesalt.kubeadm.init") == {}

    # a worker joins the READY cluster without touching the master
    admin_conf = node.run(["sha256sum", "/etc/kubernetes/admin.conf"], check=True).stdout
    worker = lab.nodes[1]
    [worker_id] = join(ctl, "solo", [worker], tmp_path / "creds")
    configure(ctl, [worker_id], ["worker"])
    status = provision(ctl, "solo")
    assert status["state"] == "READY", status
    ran = {s["stage"]: s["nodes"] for s in status["operation"]["stages"] if s["state"] == "done"}
    assert ran.pop("worker-join") == [worker_id]
    assert "control-plane-init" not in ran and "cni" not in ran, ran
    assert all(nodes == [worker_id] for stage, nodes in ran.items()
               if stage not in ("wait-for-pods", "ready")), ran
    assert node.run(["sha256sum", "/etc/kubernetes/admin.conf"], check=True).stdout == admin_conf
    assert len(kubectl(node, "get", "nodes")["items"]) == 2
    assert worker.run(["systemctl", "is-active", "kubelet"]).stdout.strip() == "active"
    assert {r["status"] for r in ctl.run_ok("node.list", "cluster=solo")} == {"READY"}


def test_dedicated_multi_fails_at_join_then_resumes(lab, lab_controller, tmp_path, fresh_nodes,
                                                    artifact_source):
    ctl = lab_controller
    ctl.run_ok("artifacts.sync", K8S, f"source={artifact_source}")
    ids = enroll(lab, ctl, "multi", lab.nodes[:4], tmp_path / "creds", ha=True,
                 dedicated_master=True, blueprint="minimal", cni="cilium")
    configure(ctl, ids, ["master", "master", "master", "worker"])
    masters = sorted(ids[:3])
    # the second master's kubeadm join fails (stand-in failure marker)
    second = lab.nodes[ids.index(masters[1])]
    second.write(f"{MARKERS}/fail-kubeadm-join", "")
    status = provision(ctl, "multi")
    op = status["operation"]
    assert (status["state"], op["state"], op["failed_stage"]) == \
        ("FAILED", "failed", "control-plane-join")
    assert op["failed_node"] == masters[1]
    assert "kubeadm" in op["error"]
    done_before = {s["stage"] for s in op["stages"] if s["state"] == "done"}
    assert {"prechecks", "etcd", "control-plane-init"} <= done_before
    second.run(["rm", "-f", f"{MARKERS}/fail-kubeadm-join"], check=True)
    assert provision(ctl, "multi")["state"] == "READY"
    status = ctl.run_ok("cluster.status", "multi", "history=True")
    assert status["state"] == "READY"
    last = status["operations"][-1]
    assert {s["stage"] for s in last["stages"] if s["state"] == "skipped"} >= done_before
    first = lab.nodes[ids.index(masters[0])]
    nodes = {n["metadata"]["name"]: n for n in kubectl(first, "get", "nodes")["items"]}
    assert len(nodes) == 4
    for name, k8s_node in nodes.items():
        taints = {t["key"] for t in k8s_node["spec"].get("taints") or []}
        if name in masters:
            assert "node-role.kubernetes.io/control-plane" in taints, name
        else:
            assert "node-role.kubernetes.io/control-plane" not in taints, name
    members = first.run(["etcdctl", "--endpoints", f"https://{first.address}:2379", "--cacert",
                         "/etc/etcd/pki/ca.crt", "--cert", "/etc/etcd/pki/server.crt",
                         "--key", "/etc/etcd/pki/server.key", "member", "list"], check=True)
    assert members.stdout.count("started") == 3
    assert 'cluster-pool-ipv4-cidr: "10.244.0.0/16"' in first.read(
        "/etc/kubesalt/manifests/cilium.yaml")
    # the earlier stages report no changes when applied again
    assert changed_states(ctl, ids, "kubesalt.binaries,kubesalt.containerd,kubesalt.consul") \
        == {}
