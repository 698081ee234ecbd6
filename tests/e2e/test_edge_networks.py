"""Edge sites on lab nodes: one node whose firewall lets out only the site's HTTP proxy
(tinyproxy on the lab bridge, basic auth, CONNECT allowed to the controller's agent gateway
only), one allowed a single port to the controller (the gateway's). A wrong proxy password
fails conjurer's prechecks naming the proxy and the fix, and leaves the node as it was; then
both enroll, are approved, answer the controller, and provision to READY in one cluster while
the proxy restarts in the middle of a stage."""

import pytest

from tests.e2e.cleanliness import INSTALLED
from tests.e2e.test_operations_trust import HOLD, stage_running
from tests.e2e.test_provision import DEST, K8S, configure, join, salt
from tests.labkit import artifacts as lab_artifacts
from tests.labkit.lab import NETWORK
from tests.tinyproxy import TinyProxy
from tests.waiting import wait_for

pytestmark = pytest.mark.lab
CLUSTER = "edge1"
USER, SECRET = "edge", "s1te-pr0xy"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    source = tmp_path_factory.mktemp("artifacts")
    lab_artifacts.build(source, K8S)
    return source


@pytest.fixture
def site(lab, lab_controller, tmp_path):
    """Two fresh nodes behind the site's firewall and its proxy; given back renewed, since
    their firewall rules and agents must not reach the next test."""
    lab.renew(lab.nodes[:2])
    proxy = TinyProxy(tmp_path, auth=(USER, SECRET), connect_ports=[lab_controller.gateway_port],
                      listen=lab.bridge_address, allow=NETWORK).start()
    behind_proxy, one_port = lab.nodes[:2]
    behind_proxy.restrict_egress(lab.bridge_address, [proxy.port])
    one_port.restrict_egress(lab.bridge_address, [lab_controller.gateway_port])
    try:
        yield proxy, behind_proxy, one_port
    finally:
        proxy.stop()
        lab.renew(lab.nodes[:2])


def _opens(node, address, port):
    """Whether `node` can open TCP to address:port (python on the node, 5 s)."""
    script = (f"import socket; socket.create_connection(({address!r}, {port}), timeout=5)"
              ".close()")
    return node.run(["python3", "-c", script]).returncode == 0


def _installed(node):
    """What of kubesalt's files and units a node has (a fresh node has some of the paths:
    the lab's base image carries etcd's package)."""
    paths = [path for path in INSTALLED if node.exists(path)]
    units = node.run(["systemctl", "list-units", "--all", "--no-legend", "--plain",
                      "kubesalt*"]).stdout.split()
    return paths, units


def _conjurer(node, *flags):
    return node.run(["python3", f"{DEST}/conjurer", f"-edge-name={CLUSTER}",
                     f"-passphrase-file={DEST}/{CLUSTER}-passphrase.txt",
                     f"-creds-file={DEST}/{CLUSTER}.pem", *flags], timeout=300)


def _operation(ctl):
    return ctl.cluster_status(CLUSTER)["operation"]


def test_nodes_behind_a_proxy_or_one_port_enroll_and_provision_to_ready(
        lab, lab_controller, site, artifacts, tmp_path):
    ctl = lab_controller
    proxy, behind_proxy, one_port = site
    # the firewall holds: the controller's ports are closed to both, the proxy and the
    # gateway open
    for node, open_port in ((behind_proxy, proxy.port), (one_port, ctl.gateway_port)):
        assert not _opens(node, lab.bridge_address, ctl.publish_port)
        assert not _opens(node, lab.bridge_address, ctl.https_port)
        assert _opens(node, lab.bridge_address, open_port)

    ctl.run_ok("artifacts.sync", K8S, f"source={artifacts}")
    ctl.run_ok("cluster.create", CLUSTER, "os=debian-12", f"k8s_version={K8S}",
               "auto_approve=True", "blueprint=minimal", "pod_subnet=10.251.0.0/16",
               "service_subnet=10.113.0.0/16",
               f"proxy={{http: '{proxy.url}', https: '{proxy.url}'}}")
    dest = tmp_path / "installer"
    ctl.run_ok("cluster.installer", CLUSTER, f"dest={dest}")

    # a wrong password (tinyproxy answers 401 to a CONNECT with wrong credentials, 407 to
    # one without): the prechecks say so, naming the proxy (its password hidden) and the fix,
    # and the node keeps nothing
    behind_proxy.push(dest, DEST)
    before = _installed(behind_proxy)
    wrong = proxy.url.replace(SECRET, "not-the-password")
    failed = _conjurer(behind_proxy, f"-proxy={wrong}")
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0, said
    assert "refuses the user and password" in said, said
    assert f"{lab.bridge_address}:{proxy.port}" in said and "fix:" in said, said
    assert "not-the-password" not in said and "***" in said, said
    assert "Traceback" not in said, said
    assert _installed(behind_proxy) == before

    # the proxy from the credentials on one node, the gateway's port alone on the other
    ids = join(ctl, CLUSTER, [behind_proxy, one_port], dest,
               flags={one_port.name: ["-proxy=direct", "-gateway"]})
    for node in (behind_proxy, one_port):
        assert node.systemctl("is-active", "kubesalt-tunnel").stdout.strip() == "active"
    assert f"CONNECT {lab.bridge_address}:{ctl.gateway_port}" in proxy.log.read_text()
    configure(ctl, ids, ["master,worker", "worker"])

    # the proxy restarts while a stage runs on the node behind it (held by the kubeadm
    # stand-in): the tunnel reconnects and the operation goes on
    behind_proxy.write(HOLD, "")
    ctl.run_ok("cluster.provision", CLUSTER)
    wait_for(lambda: stage_running(ctl, CLUSTER, "control-plane-init"), 600,
             "control-plane-init to run")
    proxy.restart()
    # a call published while the stage runs is answered: the agent's publish and return
    # connections came back through the restarted proxy
    wait_for(lambda: salt(ctl, ids[0], "test.echo", "back", timeout=75) == {ids[0]: "back"},
             180, "the agent behind the proxy to answer again", interval=3)
    assert stage_running(ctl, CLUSTER, "control-plane-init")
    behind_proxy.run(["rm", "-f", HOLD], check=True)
    ended = wait_for(lambda: (op := _operation(ctl))["state"] != "running" and op, 900,
                     f"{CLUSTER}'s provisioning to end", interval=3)
    assert ended["state"] == "done", ended
    assert ctl.run_ok("cluster.status", CLUSTER)["state"] == "READY"

    # both answer the controller, through the proxy and through the one port
    answers = salt(ctl, "-L", ",".join(ids), "test.echo", "edge", timeout=120)
    assert answers == {node_id: "edge" for node_id in ids}, answers
    # and they do so through their tunnels: the minions know no other way to the controller
    masters = salt(ctl, "-L", ",".join(ids), "config.get", "master", timeout=120)
    assert masters == {node_id: "127.0.0.1" for node_id in ids}, masters
