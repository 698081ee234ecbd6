"""Provisioning end to end on lab nodes: conjurer, auto-approve, roles, `cluster.provision`,
READY; then the day-2 operations on the READY clusters: upgrade, node removal, reset. Real
salt, real etcd and containerd, stand-in kubeadm/kubelet/kubectl/consul/crictl. Each test
starts from freshly booted nodes."""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from kubesalt.master.inventory import matrix as matrix_mod
from tests.integration.controller import BIN, _env, last_json
from tests.labkit import artifacts as lab_artifacts
from tests.e2e.cleanliness import assert_no_key, assert_node_clean, wait_until_agent_gone
from tests.waiting import wait_for

pytestmark = pytest.mark.lab
DEST = "/root/kubesalt"
K8S = "1.29.14"
K8S_NEXT = "1.30.10"
MARKERS = "/etc/kubesalt-standin"


@pytest.fixture(scope="module")
def artifact_source(tmp_path_factory):
    source = tmp_path_factory.mktemp("artifacts")
    lab_artifacts.build(source, K8S)
    lab_artifacts.build(source, K8S_NEXT)
    return source


@pytest.fixture
def fresh_nodes(lab):
    """Freshly booted nodes (renewed before each test, not after: the next test or the lab's
    teardown does that)."""
    lab.renew()
    return lab.nodes


def enroll(lab, controller, cluster, nodes, dest, **settings):
    """Create `cluster` (auto-approve) and enroll `nodes` into it; their ids in node order."""
    args = [f"{k}={v}" for k, v in settings.items()]
    controller.run_ok("cluster.create", cluster, "os=debian-12", f"k8s_version={K8S}",
                      "auto_approve=True", *args)
    controller.run_ok("cluster.installer", cluster, f"dest={dest}")
    return join(controller, cluster, nodes, dest)


def join(controller, cluster, nodes, dest, flags=None):
    """Run conjurer on `nodes` at once with the installer files in `dest` (and a node's own
    `flags[node.name]`); wait until each is APPROVED and probed; their ids in node order."""
    def run(node):
        node.push(dest, DEST)
        return node.run(["python3", f"{DEST}/conjurer", f"-edge-name={cluster}",
                         f"-passphrase-file={DEST}/{cluster}-passphrase.txt",
                         f"-creds-file={DEST}/{cluster}.pem", *(flags or {}).get(node.name, ())],
                        timeout=600)

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
    return operate(controller, cluster, "cluster.provision", cluster, timeout=timeout)


def operate(controller, cluster, verb, *args, timeout=1500):
    """Start an operation of `cluster` with `salt-run verb args wait=True` (one process
    following the operation in the store, as an operator would, instead of a salt-run
    cluster.status every few seconds competing with the nodes for the CPU); returns
    cluster.status once it ended."""
    proc = subprocess.run([str(BIN / "salt-run"), "-c", str(controller.conf_dir), "--out=json",
                           verb, *args, "wait=True", f"timeout={timeout}"],
                          capture_output=True, text=True, timeout=timeout + 120, env=_env(),
                          stdin=subprocess.DEVNULL)
    final = last_json(proc.stdout)
    assert isinstance(final, dict) and final.get("operation"), (proc.stdout, proc.stderr)
    status = controller.run_ok("cluster.status", cluster)
    assert status["operation"]["operation"] == final["operation"], (status, final)
    assert status["operation"]["state"] in ("done", "failed", "cancelled"), status
    return status


def refused(controller, *args):
    """The errors of a salt-run call that must be refused."""
    code, out = controller.run(*args)
    assert code != 0 and out["errors"], out
    return " ".join(e["message"] for e in out["errors"])


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


def test_converged_single_survives_a_restart_grows_upgrades_and_shrinks(
        lab, lab_controller, tmp_path, fresh_nodes, artifact_source):
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

    upgrade_fails_on_the_worker_then_resumes(ctl, node, node_id, worker, worker_id,
                                             artifact_source)
    remove_the_worker(ctl, node, node_id, worker, worker_id)


def upgrade_fails_on_the_worker_then_resumes(ctl, master, master_id, worker, worker_id,
                                             artifact_source):
    assert "one minor at a time" in refused(ctl, "cluster.upgrade", "solo", "k8s_version=1.31")
    assert "downgrades are not supported" in refused(ctl, "cluster.upgrade", "solo",
                                                     "k8s_version=1.28")
    assert f"artifacts.sync {K8S_NEXT}" in refused(ctl, "cluster.upgrade", "solo",
                                                   f"k8s_version={K8S_NEXT}")
    assert ctl.run_ok("cluster.show", "solo")["k8s_version"] == K8S, "refusals change nothing"
    ctl.run_ok("artifacts.sync", K8S_NEXT, f"source={artifact_source}")
    worker.write(f"{MARKERS}/fail-kubeadm-upgrade-node", "")
    status = operate(ctl, "solo", "cluster.upgrade", "solo", f"k8s_version={K8S_NEXT}")
    op = status["operation"]
    assert (status["state"], op["kind"], op["failed_stage"], op["failed_node"]) == \
        ("FAILED", "upgrade", "upgrade-workers", worker_id), op
    assert op["params"] == {"from": K8S, "to": K8S_NEXT}
    assert "kubeadm upgrade node" in op["error"]
    # the first master went first (kubeadm upgrade apply) and is on the new version
    assert master.run(["kubelet", "--version"]).stdout.strip() == f"Kubernetes v{K8S_NEXT}"
    worker.run(["rm", "-f", f"{MARKERS}/fail-kubeadm-upgrade-node"], check=True)
    status = operate(ctl, "solo", "cluster.upgrade", "solo")
    assert status["state"] == "READY", status
    stages = {s["stage"]: s for s in status["operation"]["stages"]}
    assert [stages[s]["state"] for s in ("upgrade-check", "upgrade-first-master",
                                         "upgrade-workers", "ready")] == \
        ["skipped", "skipped", "done", "done"], stages
    assert stages["upgrade-workers"]["nodes"] == [worker_id]
    assert ctl.run_ok("cluster.show", "solo")["k8s_version"] == K8S_NEXT
    components = matrix_mod.default().components(K8S_NEXT)
    for lab_node in (master, worker):
        assert lab_node.run(["kubelet", "--version"]).stdout.strip() == \
            f"Kubernetes v{K8S_NEXT}"
        assert lab_node.run(["kubeadm", "version", "-o", "short"]).stdout.strip() == \
            f"v{K8S_NEXT}"
        record = yaml.safe_load(lab_node.read("/etc/kubesalt/upgraded.yaml"))
        assert record["kubernetes"] == K8S_NEXT
        assert record["containerd"] == components["containerd"]
        assert lab_node.run(["systemctl", "is-active", "kubelet", "containerd"]).stdout.split() \
            == ["active", "active"]
    k8s_nodes = kubectl(master, "get", "nodes")["items"]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in k8s_nodes} == {f"v{K8S_NEXT}"}
    assert not any(n["spec"].get("unschedulable") for n in k8s_nodes), "left cordoned"
    assert kubectl(master, "version")["serverVersion"]["gitVersion"] == f"v{K8S_NEXT}"


def remove_the_worker(ctl, master, master_id, worker, worker_id):
    status = operate(ctl, "solo", "node.remove", worker_id)
    op = status["operation"]
    assert (status["state"], op["kind"], op["state"]) == ("READY", "remove-node", "done"), op
    stages = {s["stage"]: s for s in op["stages"]}
    assert stages["drain"]["nodes"] == [master_id] and stages["drain"]["state"] == "done"
    assert stages["etcd-member"]["state"] == "skipped"
    assert stages["reset-node"]["nodes"] == [worker_id]
    assert stages["delete-node"]["nodes"] == [master_id]
    assert [n["metadata"]["name"] for n in kubectl(master, "get", "nodes")["items"]] == \
        [master_id]
    assert [r["id"] for r in ctl.run_ok("node.list", "cluster=solo")] == [master_id]
    assert worker_id not in ctl.run_ok("node.list")
    wait_until_agent_gone(worker)
    assert_node_clean(worker)
    assert_no_key(ctl, worker_id)
    assert master.run(["systemctl", "is-active", "kubelet"]).stdout.strip() == "active"


def test_dedicated_multi_loses_a_master_and_resets(
        lab, lab_controller, tmp_path, fresh_nodes, artifact_source):
    ctl = lab_controller
    ctl.run_ok("artifacts.sync", K8S, f"source={artifact_source}")
    ids = enroll(lab, ctl, "multi", lab.nodes[:4], tmp_path / "creds", ha=True,
                 dedicated_master=True, blueprint="minimal", cni="cilium")
    configure(ctl, ids, ["master", "master", "master", "worker"])
    masters = sorted(ids[:3])
    worker = lab.nodes[3]
    a_failed_worker_join_leaves_the_masters_lane_finished(ctl, worker, ids[3])
    worker.run(["rm", "-f", f"{MARKERS}/fail-kubeadm-join"], check=True)
    status = provision(ctl, "multi")
    assert status["state"] == "READY", status
    stages = {s["stage"]: s for s in status["operation"]["stages"]}
    # the rerun ran only what had not finished: the worker's join, then the last checks
    ran = {name for name, stage in stages.items() if stage["state"] == "done"}
    assert ran == {"worker-join", "wait-for-pods", "ready"}, stages
    assert stages["worker-join"]["per_node"][ids[3]]["state"] == "done"
    assert stages["control-plane-join"]["nodes"] == masters[1:]
    # every stage is idempotent: applying them again changes nothing
    assert changed_states(ctl, ids, "kubesalt.os,kubesalt.binaries,kubesalt.containerd,"
                          "kubesalt.consul") == {}
    assert changed_states(ctl, masters, "kubesalt.etcd") == {}
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

    a_master_power_cut_degrades_health_until_it_is_back(ctl, lab, ids, masters)
    remove_a_master_but_not_two(ctl, lab, ids, masters, first)
    reset_then_enroll_and_provision_again(ctl, lab, ids, tmp_path)


def health(ctl, cluster):
    return ctl.run_ok("cluster.show", cluster)["health"]


def a_master_power_cut_degrades_health_until_it_is_back(ctl, lab, ids, masters):
    """The controller's own checks, unasked: degraded within 60 s naming the master that lost
    power, healthy again once it booted. The first master is the one cut: the API keeps its
    objects in etcd, so the other masters still serve them and take writes."""
    wait_for(lambda: health(ctl, "multi")["state"] == "healthy", 60, "multi to be healthy")
    cut, other = (lab.nodes[ids.index(m)] for m in masters[:2])
    cut.power_off()
    degraded = wait_for(lambda: (h := health(ctl, "multi"))["state"] == "degraded"
                        and [p["node"] for p in h["problems"]] == [masters[0]] and h, 60,
                        "multi's health to be degraded by the first master alone")
    assert [(p["node"], p["state"]) for p in degraded["problems"]] == \
        [(masters[0], "disconnected")], degraded
    assert ctl.run_ok("cluster.status", "multi")["state"] == "READY"
    listed = {n["id"]: n["health"]["state"] for n in ctl.run_ok("node.list", "cluster=multi")}
    assert listed == {**dict.fromkeys(ids, "healthy"), masters[0]: "disconnected"}, listed
    assert {n["metadata"]["name"] for n in kubectl(other, "get", "nodes")["items"]} == set(ids)
    other.write("/root/outage.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                "  name: written-during-the-outage\n  namespace: default\n")
    other.run(["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "apply", "-f",
               "/root/outage.yaml"], check=True)
    cut.boot()
    cut.wait_running()
    wait_for(lambda: health(ctl, "multi")["state"] == "healthy", 180,
             "multi to be healthy again after the master booted")
    # the first master's own API server reads what another master wrote while it was off
    kept = cut.run(["kubectl", "--kubeconfig", "/etc/kubernetes/super-admin.conf", "get",
                    "configmap", "written-during-the-outage", "-n", "default", "-o", "name"],
                   check=True)
    assert kept.stdout.strip() == "configmap/written-during-the-outage"


def a_failed_worker_join_leaves_the_masters_lane_finished(ctl, worker, worker_id):
    worker.write(f"{MARKERS}/fail-kubeadm-join", "")
    status = provision(ctl, "multi")
    op = status["operation"]
    assert (status["state"], op["failed_stage"], op["failed_node"]) == \
        ("FAILED", "worker-join", worker_id), op
    stages = {s["stage"]: s for s in op["stages"]}
    assert stages["worker-join"]["per_node"][worker_id]["state"] == "failed"
    assert "join" in op["error"], op["error"]
    # the masters went on without the worker: joined, CNI, taints, cert-manager
    for name in ("control-plane-join", "cni", "taints", "cert-manager"):
        assert stages[name]["state"] == "done", stages[name]
    # a worker joins as soon as the control plane is up, not after every master joined
    assert stages["worker-join"]["started"] <= stages["control-plane-join"]["per_node"][
        max(stages["control-plane-join"]["nodes"])]["started"], stages
    assert stages["wait-for-pods"]["state"] == "pending", "it needs every node"


def remove_a_master_but_not_two(ctl, lab, ids, masters, first):
    leaving = lab.nodes[ids.index(masters[2])]
    status = operate(ctl, "multi", "node.remove", masters[2])
    op = status["operation"]
    assert (status["state"], op["state"]) == ("READY", "done"), op
    stages = {s["stage"]: s for s in op["stages"]}
    assert stages["etcd-member"]["state"] == "done"
    assert stages["drain"]["nodes"] == [masters[0]]
    members = first.run(["etcdctl", "--endpoints", f"https://{first.address}:2379", "--cacert",
                         "/etc/etcd/pki/ca.crt", "--cert", "/etc/etcd/pki/server.crt",
                         "--key", "/etc/etcd/pki/server.key", "member", "list"], check=True)
    assert members.stdout.count("started") == 2 and masters[2] not in members.stdout
    assert masters[2] not in {n["metadata"]["name"]
                              for n in kubectl(first, "get", "nodes")["items"]}
    wait_until_agent_gone(leaving)
    assert_node_clean(leaving)
    message = refused(ctl, "node.remove", masters[1])
    assert "below quorum" in message and masters[1] in message
    assert {r["status"] for r in ctl.run_ok("node.list", "cluster=multi")} == {"READY"}


def reset_then_enroll_and_provision_again(ctl, lab, ids, tmp_path):
    assert "salt-run cluster.update multi reset_enabled=True" in refused(
        ctl, "cluster.reset", "multi", "confirm=True")
    ctl.run_ok("cluster.update", "multi", "reset_enabled=True")
    assert "confirm=True" in refused(ctl, "cluster.reset", "multi")
    settings = ctl.run_ok("cluster.show", "multi")
    status = operate(ctl, "multi", "cluster.reset", "multi", "confirm=True")
    op = status["operation"]
    assert (status["state"], op["kind"], op["state"]) == ("CREATED", "reset", "done"), op
    assert [s["stage"] for s in op["stages"]] == ["reset-nodes", "remove-agents", "forget-nodes"]
    after = ctl.run_ok("cluster.show", "multi")
    for kept in ("ha", "dedicated_master", "cni", "pod_subnet", "blueprint", "k8s_version",
                 "reset_enabled"):
        assert after[kept] == settings[kept], kept
    assert ctl.run_ok("node.list", "cluster=multi") == []
    nodes = lab.nodes[:4]
    wait_for(lambda: not any(n.exists("/opt/kubesalt") for n in nodes), 120,
             "every node's agent to go")
    for lab_node in nodes:
        assert_node_clean(lab_node)
    for node_id in ids:
        assert_no_key(ctl, node_id)
    assert not (ctl.root / "var" / "lib" / "kubesalt" / "clusters" / "multi").exists()
    # the old credentials were revoked; new ones enroll the same machines again
    ctl.run_ok("cluster.installer", "multi", f"dest={tmp_path / 'creds2'}")
    again = join(ctl, "multi", nodes, tmp_path / "creds2")
    assert again == ids
    configure(ctl, again, ["master", "master", "master", "worker"])
    status = provision(ctl, "multi")
    assert status["state"] == "READY", status
    assert len(kubectl(lab.nodes[ids.index(sorted(ids[:3])[0])], "get", "nodes")["items"]) == 4
