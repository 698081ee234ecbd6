"""The lab stand-ins (tests/labkit/bin) on the host: each node is a directory that
KUBESALT_STANDIN_ROOT re-roots every path into, and each API server listens on its own
127.x.y.z loopback address, so nothing outside the test's temporary directory or loopback is
touched."""

import base64
import hashlib
import http.client
import importlib.machinery
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from kubesalt.master.trust import cluster_secrets
from tests import etcd_loopback
from tests.labkit import artifacts

BIN = Path(__file__).resolve().parents[1] / "labkit" / "bin"
STANDIN_VERSION = re.search(r'^STANDIN_VERSION = "(v[^"]+)"', (BIN / "kubeadm").read_text(),
                            re.M).group(1)
TOKEN = "abcdef.0123456789abcdef"

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None,
                       reason="the stand-ins make certificates with the openssl CLI"),
    pytest.mark.skipif(etcd_loopback.binary() is None,
                       reason="the API server stand-in keeps its objects in a real etcd: build "
                              "the lab's etcd layer (python -m tests.labkit prepare) or install "
                              "etcd-server")]


def wait_until(what, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def free_port(host):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def subnet():
    """A /24 of loopback addresses of our own, so parallel runs do not collide."""
    return f"127.{random.randrange(100, 250)}.{random.randrange(1, 250)}"


@pytest.fixture(scope="module")
def etcd(tmp_path_factory, subnet):
    """The cluster's etcd: a real member, TLS with client certificates, as kubesalt's etcd
    state runs it."""
    member = etcd_loopback.Etcd(tmp_path_factory.mktemp("etcd"), f"{subnet}.2").start()
    yield member
    member.stop()


def external_etcd(node, etcd):
    """The API server's etcd client files on `node`, and the ClusterConfiguration naming them."""
    for name, source in (("ca.crt", etcd.ca), ("apiserver-etcd-client.crt", etcd.cert),
                         ("apiserver-etcd-client.key", etcd.key)):
        node.write(f"/etc/kubernetes/pki/etcd/{name}", Path(source).read_text())
    return f"""\
etcd:
  external:
    endpoints:
    - {etcd.endpoint}
    caFile: /etc/kubernetes/pki/etcd/ca.crt
    certFile: /etc/kubernetes/pki/etcd/apiserver-etcd-client.crt
    keyFile: /etc/kubernetes/pki/etcd/apiserver-etcd-client.key
"""


def etcd_get(etcd, key, range_end=None):
    """[(key, object, mod_revision)] straight from etcd's JSON gateway."""
    context = ssl.create_default_context(cafile=etcd.ca)
    context.load_cert_chain(etcd.cert, etcd.key)
    connection = http.client.HTTPSConnection(etcd.address, etcd.port, timeout=5,
                                             context=context)
    body = {"key": base64.b64encode(key.encode()).decode()}
    if range_end:
        body["range_end"] = base64.b64encode(range_end.encode()).decode()
    try:
        connection.request("POST", "/v3/kv/range", body=json.dumps(body))
        answer = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    return [(base64.b64decode(kv["key"]).decode(), json.loads(base64.b64decode(kv["value"])),
             int(kv["mod_revision"])) for kv in answer.get("kvs") or []]


def load_tool(name):
    loader = importlib.machinery.SourceFileLoader(f"standin_{name}", str(BIN / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class Node:
    """One lab node as the stand-ins see it: a root directory and an address."""

    def __init__(self, root, address, name):
        self.root, self.address, self.name = Path(root), address, name
        self.root.mkdir(parents=True, exist_ok=True)
        self.kubelet = None
        self.env = {**os.environ, "KUBESALT_STANDIN_ROOT": str(self.root),
                    "KUBESALT_STANDIN_TIMEOUT": "20", "KUBESALT_STANDIN_HEARTBEAT": "0.3",
                    "HOME": str(self.root / "root")}
        self.env.pop("KUBECONFIG", None)

    def path(self, absolute):
        return self.root / absolute.lstrip("/")

    def write(self, absolute, text):
        target = self.path(absolute)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return absolute

    def run(self, tool, *args, stdin=None, binary=None, timeout=60):
        return subprocess.run([sys.executable, str(binary or BIN / tool), *args], env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)

    def start(self, tool, *args, binary=None):
        return subprocess.Popen([sys.executable, str(binary or BIN / tool), *args],
                                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def start_kubelet(self, binary=None):
        self.kubelet = self.start("kubelet", f"--node-ip={self.address}", binary=binary)
        return self.kubelet

    def stop_kubelet(self):
        if self.kubelet and self.kubelet.poll() is None:
            self.kubelet.terminate()
            self.kubelet.communicate(timeout=10)
        self.kubelet = None

    def kubectl(self, *args, check=True, stdin=None):
        result = self.run("kubectl", *args, stdin=stdin)
        if check:
            assert result.returncode == 0, result.stderr
        return result


def init_config(node, port, extra_cluster=""):
    return node.write("/etc/kubernetes/kubeadm.yaml", f"""\
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
bootstrapTokens:
- token: "{TOKEN}"
  ttl: 24h0m0s
nodeRegistration:
  name: {node.name}
  kubeletExtraArgs:
    node-ip: {node.address}
localAPIEndpoint:
  advertiseAddress: {node.address}
  bindPort: {port}
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: {STANDIN_VERSION}
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
{extra_cluster}""")


def kubeadm_init(node, config, *extra, binary=None):
    """kubeadm init waits for the kubelet to run the API server, as the real one does; the
    kubelet starts once init has written its configuration (systemd would restart it)."""
    process = node.start("kubeadm", "init", "--config", config, *extra, binary=binary)
    wait_until("the kubelet configuration", lambda: node.path(
        "/var/lib/kubelet/config.yaml").exists() or process.poll() is not None)
    if process.poll() is None:
        node.start_kubelet(binary=binary.parent / "kubelet" if binary else None)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, out + err
    return out


def join_command(init_output, control_plane=False):
    """The worker's (last) or the control plane's (first) join command init printed."""
    text = init_output.replace("\\\n", " ")
    lines = [line for line in text.splitlines() if line.strip().startswith("kubeadm join")]
    return (lines[0] if control_plane else lines[-1]).split()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, subnet, etcd):
    """A first master whose CA was made beforehand (as the controller does), with external
    etcd client files in place, and a joined worker; both kubelets running."""
    base = tmp_path_factory.mktemp("standins")
    master = Node(base / "node1", f"{subnet}.11", "node1")
    worker = Node(base / "node2", f"{subnet}.12", "node2")
    port = free_port(master.address)
    ca_key = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                             "ec_paramgen_curve:P-256"], capture_output=True, text=True,
                            check=True).stdout
    master.write("/etc/kubernetes/pki/ca.key", ca_key)
    master.path("/etc/kubernetes/pki/ca.key").chmod(0o600)  # as the controller places it
    ca_cert = subprocess.run(["openssl", "req", "-x509", "-new", "-key",
                              str(master.path("/etc/kubernetes/pki/ca.key")), "-subj",
                              "/CN=kubernetes", "-days", "30"], capture_output=True, text=True,
                             check=True).stdout
    master.write("/etc/kubernetes/pki/ca.crt", ca_cert)
    config = init_config(master, port, external_etcd(master, etcd))
    output = kubeadm_init(master, config, "--upload-certs")
    command = join_command(output)
    worker_config = worker.write("/etc/kubernetes/join.yaml", f"""\
apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "{command[2]}"
    token: "{TOKEN}"
    caCertHashes: ["{command[command.index('--discovery-token-ca-cert-hash') + 1]}"]
nodeRegistration:
  name: node2
  kubeletExtraArgs:
    node-ip: {worker.address}
""")
    state = {"master": master, "worker": worker, "init_output": output, "join": command,
             "ca_cert": ca_cert, "port": port, "worker_config": worker_config,
             "subnet": subnet, "base": base, "etcd": etcd}
    yield state
    for node in (master, worker):
        node.stop_kubelet()


@pytest.fixture(scope="module")
def joined(cluster):
    worker = cluster["worker"]
    result = worker.run("kubeadm", "join", "--config", cluster["worker_config"])
    assert result.returncode == 0, result.stdout + result.stderr
    worker.start_kubelet()
    cluster["master"].kubectl("wait", "--for=condition=Ready", "nodes", "--all",
                              "--timeout=15s")
    return cluster


# -- kubeadm init -------------------------------------------------------------------------------

def test_init_writes_what_kubeadm_writes_and_keeps_the_existing_ca(cluster):
    master = cluster["master"]
    pki = master.path("/etc/kubernetes/pki")
    for name in ("ca.crt", "apiserver.crt", "apiserver.key", "apiserver-kubelet-client.crt",
                 "front-proxy-ca.crt", "front-proxy-client.crt", "sa.key", "sa.pub"):
        assert (pki / name).exists(), name
    assert (pki / "ca.crt").read_text() == cluster["ca_cert"]
    for key in pki.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    admin = yaml.safe_load(master.path("/etc/kubernetes/admin.conf").read_text())
    assert admin["clusters"][0]["cluster"]["server"] == \
        f"https://{master.address}:{cluster['port']}"
    assert stat.S_IMODE(master.path("/etc/kubernetes/admin.conf").stat().st_mode) == 0o600
    for conf in ("kubelet.conf", "super-admin.conf", "controller-manager.conf",
                 "scheduler.conf"):
        assert master.path(f"/etc/kubernetes/{conf}").exists()
    manifests = master.path("/etc/kubernetes/manifests")
    assert sorted(p.name for p in manifests.iterdir()) == [
        "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
    apiserver = yaml.safe_load((manifests / "kube-apiserver.yaml").read_text())
    command = apiserver["spec"]["containers"][0]["command"]
    assert f"--etcd-servers={cluster['etcd'].endpoint}" in command
    assert "--etcd-certfile=/etc/kubernetes/pki/etcd/apiserver-etcd-client.crt" in command
    assert apiserver["spec"]["containers"][0]["image"].endswith(":" + STANDIN_VERSION)
    kubelet = yaml.safe_load(master.path("/var/lib/kubelet/config.yaml").read_text())
    assert kubelet["staticPodPath"] == "/etc/kubernetes/manifests"
    assert f"--node-ip={master.address}" in master.path(
        "/var/lib/kubelet/kubeadm-flags.env").read_text()


def test_init_prints_a_join_command_with_the_real_ca_hash(cluster):
    command = cluster["join"]
    assert command[:3] == ["kubeadm", "join", f"{cluster['master'].address}:{cluster['port']}"]
    assert command[command.index("--token") + 1] == TOKEN
    expected = cluster_secrets.ca_cert_hash(cluster["ca_cert"])
    assert command[command.index("--discovery-token-ca-cert-hash") + 1] == expected
    assert "--certificate-key" not in command
    control_plane = join_command(cluster["init_output"], control_plane=True)
    assert control_plane[:len(command)] == command  # --upload-certs prints both
    assert re.fullmatch(r"[0-9a-f]{64}", control_plane[control_plane.index("--certificate-key")
                                                      + 1])
    assert "Your Kubernetes control-plane has initialized successfully!" in \
        cluster["init_output"]


def test_init_refuses_a_non_empty_manifest_directory(cluster):
    master = cluster["master"]
    result = master.run("kubeadm", "init", "--config", "/etc/kubernetes/kubeadm.yaml")
    assert result.returncode != 0
    assert "[ERROR DirAvailable--etc-kubernetes-manifests]" in result.stderr


def test_bad_config_is_an_error_naming_the_field(tmp_path):
    node = Node(tmp_path, "127.0.0.1", "bad")
    config = node.write("/etc/kubeadm.yaml", "apiVersion: kubeadm.k8s.io/v1beta3\n"
                        "kind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/99\n")
    result = node.run("kubeadm", "init", "--config", config)
    assert result.returncode != 0
    assert "networking.podSubnet" in result.stderr


# -- kubeadm join -------------------------------------------------------------------------------

def join_args(cluster, token=TOKEN, ca_hash=None):
    command = cluster["join"]
    ca_hash = ca_hash or command[command.index("--discovery-token-ca-cert-hash") + 1]
    return ["join", command[2], "--token", token, "--discovery-token-ca-cert-hash", ca_hash,
            "--node-name", "intruder"]


@pytest.mark.parametrize(("token", "message"), [
    ("abcdef.0123456789abcdee", "failed to verify JWS signature"),
    ("zzzzzz.0123456789abcdef", 'token id "zzzzzz" is invalid for this cluster'),
    ("not-a-token", "was not of the form"),
])
def test_join_with_a_wrong_token_fails(cluster, tmp_path, token, message):
    node = Node(tmp_path, f"{cluster['subnet']}.30", "intruder")
    result = node.run("kubeadm", *join_args(cluster, token=token))
    assert result.returncode != 0
    assert message in result.stderr
    assert not node.path("/etc/kubernetes/kubelet.conf").exists()
    assert token.split(".")[-1] not in result.stdout + result.stderr or token == "not-a-token"


def test_join_with_a_wrong_ca_hash_fails(cluster, tmp_path):
    node = Node(tmp_path, f"{cluster['subnet']}.31", "intruder")
    wrong = "sha256:" + hashlib.sha256(b"another CA").hexdigest()
    result = node.run("kubeadm", *join_args(cluster, ca_hash=wrong))
    assert result.returncode != 0
    assert "none of the public keys" in result.stderr and "are pinned" in result.stderr
    assert not node.path("/etc/kubernetes/kubelet.conf").exists()


def test_worker_join_registers_a_ready_node(joined):
    master, worker = joined["master"], joined["worker"]
    kubelet = yaml.safe_load(worker.path("/etc/kubernetes/kubelet.conf").read_text())
    assert kubelet["users"][0]["name"] == "system:node:node2"
    assert stat.S_IMODE(worker.path("/etc/kubernetes/kubelet.conf").stat().st_mode) == 0o600
    assert worker.path("/etc/kubernetes/pki/ca.crt").read_text() == joined["ca_cert"]
    nodes = json.loads(master.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["node1", "node2"]
    first = next(n for n in nodes if n["metadata"]["name"] == "node1")
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in \
        first["spec"]["taints"]
    table = master.kubectl("get", "nodes").stdout
    assert re.search(r"node1\s+Ready\s+control-plane", table)
    assert re.search(rf"node2\s+Ready\s+<none>\s+\S+\s+{re.escape(STANDIN_VERSION)}", table)


def test_control_plane_join_downloads_the_certificates(joined, tmp_path):
    master = joined["master"]
    node = Node(tmp_path / "node3", f"{joined['subnet']}.13", "node3")
    created = master.run("kubeadm", "token", "create", "--print-join-command")
    assert created.returncode == 0, created.stderr
    command = created.stdout.split()
    control_plane = join_command(joined["init_output"], control_plane=True)
    key = control_plane[control_plane.index("--certificate-key") + 1]
    port = free_port(node.address)
    base = [*command[1:], "--control-plane", "--node-name", "node3",
            "--apiserver-advertise-address", node.address, "--apiserver-bind-port", str(port)]
    wrong = node.run("kubeadm", *base, "--certificate-key", "0" * 64)
    assert wrong.returncode != 0 and "message authentication failed" in wrong.stderr
    assert not node.path("/etc/kubernetes/pki/ca.key").exists()
    process = node.start("kubeadm", *base, "--certificate-key", key)
    wait_until("node3's manifests", lambda: node.path(
        "/etc/kubernetes/manifests/kube-apiserver.yaml").exists() or process.poll() is not None)
    node.start_kubelet()
    try:
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, out + err
        assert node.path("/etc/kubernetes/pki/ca.key").read_text() == \
            master.path("/etc/kubernetes/pki/ca.key").read_text()
        assert node.path("/etc/kubernetes/pki/etcd/apiserver-etcd-client.key").exists()
        # node3's own API server reads the same etcd.
        local = node.kubectl("--kubeconfig", "/etc/kubernetes/super-admin.conf", "get", "nodes",
                             "-o", "name").stdout.split()
        assert local == ["node/node1", "node/node2", "node/node3"]
        node.kubectl("--kubeconfig", "/etc/kubernetes/super-admin.conf", "wait",
                     "--for=condition=Ready", "node/node3", "--timeout=15s")
        the_first_master_can_go(master, node)
    finally:
        node.stop_kubelet()
        master.kubectl("delete", "node", "node3")


def controller_holder(node, kubeconfig):
    lease = json.loads(node.kubectl("--kubeconfig", kubeconfig, "get", "lease",
                                    "kube-controller-manager", "-n", "kube-system", "-o",
                                    "json").stdout)
    return lease["spec"]["holderIdentity"]


def the_first_master_can_go(master, other):
    """With the first master's API server stopped, another master's still has every object,
    and the controllers move to it: a Deployment applied there gets its pods."""
    local = "/etc/kubernetes/super-admin.conf"
    leader = controller_holder(master, "/etc/kubernetes/admin.conf")
    master.stop_kubelet()
    try:
        assert "node/node2" in other.kubectl("--kubeconfig", local, "get", "nodes", "-o",
                                             "name").stdout.split()
        other.write("/srv/moved.yaml", WORKLOADS.split("---\n")[1].replace(
            "name: web", "name: moved").replace("namespace: demo", "namespace: default")
            .replace("replicas: 3", "replicas: 2"))
        other.kubectl("--kubeconfig", local, "apply", "-f", "/srv/moved.yaml")
        pods = other.kubectl("--kubeconfig", local, "get", "pods", "-n", "default", "-o",
                             "name").stdout.split()
        assert len([p for p in pods if p.startswith("pod/moved-")]) == 2, pods
        assert controller_holder(other, local) not in ("", leader)
        other.kubectl("--kubeconfig", local, "delete", "deployment", "moved", "-n", "default")
    finally:
        master.start_kubelet()
        wait_until("the first master's API server", lambda: master.kubectl(
            "get", "nodes", check=False).returncode == 0)


# -- kubectl ------------------------------------------------------------------------------------

WORKLOADS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: demo
spec:
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - {name: agent, image: "agent:1"}
"""


def test_apply_creates_pods_that_become_ready(joined):
    master = joined["master"]
    master.write("/srv/demo.yaml", WORKLOADS)
    applied = master.kubectl("apply", "-f", "/srv/demo.yaml").stdout.splitlines()
    assert applied == ["namespace/demo created", "deployment.apps/web created",
                       "daemonset.apps/agent created"]
    again = master.kubectl("apply", "-f", "/srv/demo.yaml").stdout
    assert again.count("unchanged") == 3
    master.kubectl("wait", "--for=condition=Ready", "pods", "--all", "-A", "--timeout=15s")
    pods = json.loads(master.kubectl("get", "pods", "-n", "demo", "-o", "json").stdout)["items"]
    web = [p for p in pods if p["metadata"]["name"].startswith("web-")]
    agent = [p for p in pods if p["metadata"]["name"].startswith("agent-")]
    assert len(web) == 3 and len(agent) == 1
    # The master's NoSchedule taint keeps untolerating pods on the worker.
    assert {p["spec"]["nodeName"] for p in pods} == {"node2"}
    names = master.kubectl("get", "pods", "-n", "demo", "-o",
                           "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}").stdout
    assert sorted(names.split()) == sorted(p["metadata"]["name"] for p in pods)
    wide = master.kubectl("get", "pods", "-A", "-o", "wide").stdout
    assert re.search(r"kube-system\s+kube-apiserver-node1\s+1/1\s+Running", wide)


def test_objects_are_etcd_keys_and_updates_compare_and_swap(joined):
    master, etcd = joined["master"], joined["etcd"]
    master.write("/srv/cas.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cas\n"
                 "  namespace: default\ndata:\n  a: '1'\n")
    master.kubectl("apply", "-f", "/srv/cas.yaml")
    [(_, stored, revision)] = etcd_get(etcd, "/registry/configmaps/default/cas")
    assert stored["data"] == {"a": "1"} and "resourceVersion" not in stored["metadata"]
    read = json.loads(master.kubectl("get", "configmap", "cas", "-o", "json").stdout)
    assert read["metadata"]["resourceVersion"] == str(revision)
    assert [key for key, _, _ in etcd_get(etcd, "/registry/nodes/node1")] == \
        ["/registry/nodes/node1"]
    master.kubectl("patch", "configmap", "cas", "--type=merge", "-p", '{"data": {"a": "2"}}')
    stale = master.kubectl("patch", "configmap", "cas", "--type=merge", "-p", json.dumps(
        {"metadata": {"resourceVersion": str(revision)}, "data": {"a": "3"}}), check=False)
    assert stale.returncode != 0 and "the object has been modified" in stale.stderr
    [(_, stored, newer)] = etcd_get(etcd, "/registry/configmaps/default/cas")
    assert stored["data"] == {"a": "2"} and newer > revision
    master.kubectl("delete", "configmap", "cas")
    assert etcd_get(etcd, "/registry/configmaps/default/cas") == []


def test_taint_keeps_pods_pending_until_untainted(joined):
    master = joined["master"]
    assert master.kubectl("taint", "nodes", "node2", "maintenance=yes:NoSchedule").stdout \
        .strip() == "node/node2 tainted"
    again = master.kubectl("taint", "nodes", "node2", "maintenance=yes:NoSchedule", check=False)
    assert again.returncode != 0 and "--overwrite is false" in again.stderr
    master.write("/srv/late.yaml", WORKLOADS.replace("name: web", "name: late").replace(
        "app: web", "app: late"))
    master.kubectl("apply", "-f", "/srv/late.yaml")
    waited = master.kubectl("wait", "--for=condition=Ready", "pods", "-l", "app=late", "-n",
                            "demo", "--timeout=1s", check=False)
    assert waited.returncode != 0 and "timed out waiting for the condition" in waited.stderr
    assert master.kubectl("taint", "nodes", "node2", "maintenance:NoSchedule-").stdout \
        .strip() == "node/node2 untainted"
    master.kubectl("wait", "--for=condition=Ready", "pods", "-l", "app=late", "-n", "demo",
                   "--timeout=15s")
    missing = master.kubectl("taint", "nodes", "node2", "maintenance:NoSchedule-", check=False)
    assert missing.returncode != 0 and 'taint "maintenance:NoSchedule" not found' in \
        missing.stderr


def test_drain_evicts_and_uncordon_restores(joined):
    master = joined["master"]
    refused = master.kubectl("drain", "node2", check=False)
    assert refused.returncode != 0 and "--ignore-daemonsets" in refused.stderr
    drained = master.kubectl("drain", "node2", "--ignore-daemonsets",
                             "--delete-emptydir-data").stdout
    assert "node/node2 drained" in drained
    assert "SchedulingDisabled" in master.kubectl("get", "nodes").stdout
    master.kubectl("uncordon", "node2")
    master.kubectl("wait", "--for=condition=Ready", "pods", "-l", "app=web", "-n", "demo",
                   "--timeout=15s")
    assert "SchedulingDisabled" not in master.kubectl("get", "nodes").stdout


def test_label_and_version(joined):
    master = joined["master"]
    assert master.kubectl("label", "nodes", "node2", "disk=ssd").stdout.strip() == \
        "node/node2 labeled"
    labels = json.loads(master.kubectl("get", "node", "node2", "-o", "json").stdout)[
        "metadata"]["labels"]
    assert labels["disk"] == "ssd"
    version = json.loads(master.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == STANDIN_VERSION
    assert version["clientVersion"]["gitVersion"] == STANDIN_VERSION


# -- failure on demand, reset -------------------------------------------------------------------

@pytest.mark.parametrize(("tool", "marker", "args"), [
    ("kubectl", "fail-kubectl-get", ["get", "nodes"]),
    ("kubeadm", "fail-kubeadm-token", ["token", "create"]),
    ("kubeadm", "fail-kubeadm-upgrade-plan", ["upgrade", "plan"]),
])
def test_fail_markers_make_the_tool_fail(joined, tool, marker, args):
    master = joined["master"]
    master.write(f"/etc/kubesalt-standin/{marker}", "injected by the test\n")
    try:
        result = master.run(tool, *args)
        assert result.returncode != 0
        assert marker in result.stderr and "injected by the test" in result.stderr
    finally:
        master.path(f"/etc/kubesalt-standin/{marker}").unlink()
    assert master.run(tool, *args).returncode == 0


def test_kubelet_start_marker(tmp_path):
    node = Node(tmp_path, "127.0.0.1", "n")
    node.write("/etc/kubesalt-standin/fail-kubelet-start", "")
    result = node.run("kubelet")
    assert result.returncode == 1 and "fail-kubelet-start" in result.stderr


def test_reset_removes_the_files_and_the_node(joined):
    master, worker = joined["master"], joined["worker"]
    worker.stop_kubelet()  # real reset stops the kubelet through systemd first
    result = worker.run("kubeadm", "reset", "-f")
    assert result.returncode == 0, result.stderr
    assert not worker.path("/etc/kubernetes/kubelet.conf").exists()
    assert not list(worker.path("/etc/kubernetes/pki").iterdir())
    assert not list(worker.path("/var/lib/kubelet").iterdir())
    assert master.kubectl("get", "nodes", "-o", "name").stdout.split() == ["node/node1"]


# -- upgrade ------------------------------------------------------------------------------------

def build_standin(directory, version):
    """What the artifact sync does: one stand-in build per Kubernetes version, exactly as the
    lab's artifact source packs it for the nodes."""
    directory.mkdir(parents=True, exist_ok=True)
    for tool in ("kubeadm", "kubelet", "kubectl"):
        (directory / tool).write_bytes(artifacts.standin(tool, version.removeprefix("v")))
    return directory


def test_upgrade_one_minor_at_a_time(tmp_path, subnet, etcd):
    major, minor, _ = (int(p) for p in STANDIN_VERSION[1:].split("."))
    node = Node(tmp_path / "node", f"{subnet}.40", "node1")
    # A cluster of its own in the shared etcd: kube-apiserver's --etcd-prefix.
    own_prefix = "apiServer:\n  extraArgs:\n    etcd-prefix: /upgrade-test\n"
    try:
        kubeadm_init(node, init_config(node, free_port(node.address),
                                       external_etcd(node, etcd) + own_prefix),
                     "--skip-phases=addon/coredns")
        too_far = build_standin(tmp_path / "far", f"v{major}.{minor + 2}.0") / "kubeadm"
        refused = node.run("kubeadm", "upgrade", "apply", f"v{major}.{minor + 2}.0", "-y",
                           binary=too_far)
        assert refused.returncode != 0 and "1 minor version at a time" in refused.stderr
        target = f"v{major}.{minor + 1}.2"
        nxt = build_standin(tmp_path / "next", target) / "kubeadm"
        plan = node.run("kubeadm", "upgrade", "plan", binary=nxt)
        assert plan.returncode == 0 and f"kubeadm upgrade apply {target}" in plan.stdout
        applied = node.run("kubeadm", "upgrade", "apply", target, "-y", binary=nxt)
        assert applied.returncode == 0, applied.stderr
        assert "SUCCESS! Your cluster was upgraded" in applied.stdout
        version = json.loads(node.kubectl("version", "-o", "json").stdout)
        assert version["serverVersion"]["gitVersion"] == target
    finally:
        node.stop_kubelet()


# -- consul -------------------------------------------------------------------------------------

def dns_a(address, port, name):
    """(rcode, addresses) of an A query."""
    ident = random.randrange(1 << 16)
    query = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(2)
        client.sendto(query, (address, port))
        reply = client.recv(4096)
    flags, _, answers = struct.unpack("!HHH", reply[2:8])
    offset = len(query)  # the reply repeats the question
    found = []
    for _ in range(answers):
        _, rtype, _, _, length = struct.unpack("!HHHIH", reply[offset:offset + 12])
        if rtype == 1:
            found.append(socket.inet_ntoa(reply[offset + 12:offset + 12 + length]))
        offset += 12 + length
    return flags & 0xF, sorted(found)


class Listener:
    """A TCP service that accepts and closes connections, like an API server to a TCP check."""

    def __init__(self, address):
        self.address, self.port = address, 0
        self.reopen()

    def reopen(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.address, self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        threading.Thread(target=self.serve, args=(self.sock,), daemon=True).start()

    @staticmethod
    def serve(sock):
        while True:
            try:
                connection, _ = sock.accept()
            except OSError:
                return
            connection.close()

    def close(self):
        # shutdown() wakes the accept() blocked in serve(); close() alone would not.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def consul_agent(node, serf_port, api_listener, join=None, server=True):
    ports = {"dns": free_port(node.address), "http": free_port(node.address),
             "serf_lan": serf_port}
    config = {"node_name": node.name, "server": server, "bind_addr": node.address,
              "client_addr": node.address, "data_dir": "/var/lib/consul", "ports": ports,
              "retry_join": [join] if join else [],
              "service": {"name": "kubernetes", "port": api_listener.port,
                          "check": {"tcp": f"{node.address}:{api_listener.port}",
                                    "interval": "200ms", "timeout": "1s"}}}
    node.write("/etc/consul.d/consul.json", json.dumps(config))
    process = node.start("consul", "agent", "-config-dir=/etc/consul.d")
    return process, ports


def test_consul_dns_answers_only_live_backends(tmp_path, subnet):
    first = Node(tmp_path / "c1", f"{subnet}.21", "master1")
    second = Node(tmp_path / "c2", f"{subnet}.22", "master2")
    api1, api2 = Listener(first.address), Listener(second.address)
    serf1 = free_port(first.address)
    agent1, ports1 = consul_agent(first, serf1, api1)
    agent2, ports2 = consul_agent(second, free_port(second.address), api2,
                                  join=f"{first.address}:{serf1}", server=False)
    name = "kubernetes.service.consul"

    def answer():
        try:
            return dns_a(first.address, ports1["dns"], name)
        except OSError:
            return None

    try:
        both = sorted([first.address, second.address])
        wait_until("both masters in DNS", lambda: answer() == (0, both))
        api2.close()
        wait_until("the dead API server to leave DNS", lambda: answer() == (0, [first.address]))
        api2.reopen()
        wait_until("the API server to come back", lambda: answer() == (0, both))
        api1.close()
        api2.close()
        wait_until("NXDOMAIN with no live backend", lambda: answer() == (3, []))
        api1.reopen()
        api2.reopen()
        wait_until("both back", lambda: answer() == (0, both))
        assert dns_a(first.address, ports1["dns"], "master2.node.consul") == (0, [second.address])
        agent2.send_signal(signal.SIGKILL)
        agent2.wait(timeout=5)
        wait_until("a failed member's services to leave DNS",
                   lambda: answer() == (0, [first.address]))
        env = {**first.env, "CONSUL_HTTP_ADDR": f"{first.address}:{ports1['http']}"}
        members = subprocess.run([sys.executable, str(BIN / "consul"), "members"], env=env,
                                 capture_output=True, text=True, check=True).stdout
        assert re.search(rf"master1\s+{re.escape(first.address)}:{serf1}\s+alive\s+server",
                         members)
        assert re.search(r"master2\s+\S+\s+failed\s+client", members)
        left = subprocess.run([sys.executable, str(BIN / "consul"), "leave"], env=env,
                              capture_output=True, text=True, check=True)
        assert "Graceful leave complete" in left.stdout
        agent1.wait(timeout=10)
        assert first.path("/var/lib/consul/node-id").exists()
    finally:
        for process in (agent1, agent2):
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=5)
        api1.close()
        api2.close()


def test_consul_rejects_hcl_and_fails_on_demand(tmp_path):
    node = Node(tmp_path, "127.0.0.1", "n")
    node.write("/etc/consul.d/consul.hcl", 'server = true\n')
    result = node.run("consul", "agent", "-config-dir=/etc/consul.d")
    assert result.returncode != 0 and "JSON configuration only" in result.stderr
    node.write("/etc/kubesalt-standin/fail-consul-version", "")
    assert node.run("consul", "version").returncode == 1


# -- the files themselves -----------------------------------------------------------------------

@pytest.mark.parametrize("tool, args, expected", [
    ("kubeadm", ("version", "-o", "short"), "v1.30.7"),
    ("kubelet", ("--version",), "Kubernetes v1.30.7"),
    ("kubectl", ("version", "--client"), "Client Version: v1.30.7"),
])
def test_each_packed_stand_in_is_one_self_contained_file(tmp_path, tool, args, expected):
    source = (BIN / tool).read_text()
    assert "standin_common.py" in source and "exec(" in source  # the source tree loads it
    packed = artifacts.standin(tool, "1.30.7").decode()
    assert "exec(" not in packed
    common = (BIN / "standin_common.py").read_text().strip()
    assert packed.count(common) == 1
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / tool).write_text(packed)
    result = subprocess.run([sys.executable, str(alone / tool), *args], cwd=alone,
                            env={**os.environ, "KUBESALT_STANDIN_ROOT": str(tmp_path / "root")},
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == expected
    assert os.listdir(alone) == [tool]


def test_each_stand_in_says_what_it_stands_in_for_and_reports_its_version(tmp_path):
    node = Node(tmp_path, "127.0.0.1", "n")
    for tool in ("kubeadm", "kubelet", "kubectl", "consul"):
        head = (BIN / tool).read_text().splitlines()[:4]
        assert head[0] == "#!/usr/bin/env python3"
        assert "stand-in for" in " ".join(head)
        assert os.access(BIN / tool, os.X_OK)
    assert node.run("kubeadm", "version", "-o", "short").stdout.strip() == STANDIN_VERSION
    assert node.run("kubelet", "--version").stdout.strip() == f"Kubernetes {STANDIN_VERSION}"
    client = json.loads(node.run("kubectl", "version", "--client", "-o", "json").stdout)
    assert client["clientVersion"]["gitVersion"] == STANDIN_VERSION
    assert node.run("consul", "version").stdout.startswith("Consul v")
    rebuilt = build_standin(tmp_path / "v", "v1.30.7")
    assert node.run("kubeadm", "version", "-o", "short", binary=rebuilt / "kubeadm") \
        .stdout.strip() == "v1.30.7"


def test_the_stand_ins_yaml_reads_scalars_as_before_and_writes_what_it_reads():
    kubectl = load_tool("kubectl")
    document = kubectl.yaml_load("a: yes\nb: 12:30\nc: 2024-01-01\nd: 1e3\ne: 0644\nf: ~\n"
                                 "g: |\n  x\n  y\n")
    assert document == {"a": "yes", "b": "12:30", "c": "2024-01-01", "d": 1000.0, "e": 420,
                        "f": None, "g": "x\ny\n"}
    for value in (document, *kubectl.yaml_load_all(WORKLOADS)):
        written = kubectl.yaml_dump(value)
        assert kubectl.yaml_load(written) == value
        assert yaml.safe_load(written) == value
