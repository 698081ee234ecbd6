"""A node behind an HTTP proxy that allows one port: a real salt-minion, configured by
conjurer's own code, reaches a real controller only through the node tunnel -> tinyproxy
(CONNECT to the gateway port only, with basic auth) -> the controller's agent gateway; it
answers test.ping, and again after the proxy restarts."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kubesalt.minion_bootstrap import proxy_connect, tunnel
from tests.tinyproxy import TinyProxy
from tests.waiting import wait_for

from .controller import BIN, Controller, free_ports
from .node import LoopbackNode

pytestmark = pytest.mark.integration
SECRET = "pr0xy-s3cret"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A controller with its agent gateway on, and the site's proxy that may reach nothing
    else."""
    root = tempfile.mkdtemp(prefix="ksg-")
    controller = Controller(root)
    [controller.gateway_port] = free_ports(1)
    proxy_dir = tmp_path_factory.mktemp("proxy")
    proxy = TinyProxy(proxy_dir, auth=("alice", SECRET), connect_ports=[controller.gateway_port])
    try:
        controller.init("--gateway-port", str(controller.gateway_port))
        controller.start()
        proxy.start()
        yield controller, proxy
    finally:
        proxy.stop()
        controller.stop()
        shutil.rmtree(root, ignore_errors=True)


def _ping(controller, node_id):
    """The test.ping round trip, as test.echo: Salt's test.ping takes a minion whose script
    path contains "proxy" (a checkout in such a directory) for a proxy minion and fails."""
    proc = subprocess.run([str(BIN / "salt"), "-c", str(controller.conf_dir), "--out=json",
                           "-t", "10", node_id, "test.echo", "through-the-gateway"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    try:
        return json.loads(proc.stdout or "{}").get(node_id) == "through-the-gateway"
    except ValueError:
        return False


def _start_tunnel(node, directory):
    listen = dict(zip(("publish", "return"), free_ports(2), strict=True))
    route = proxy_connect.choose(node.creds.proxy, None, node.creds.controller["address"])
    config = directory / "tunnel.json"
    config.touch(mode=0o600)
    config.write_text(tunnel.tunnel_config(node.creds.controller, node.id, node.creds.ca_cert_pem,
                                           listen, route))
    log = open(directory / "tunnel.log", "w")  # noqa: SIM115 - the process keeps it open
    process = subprocess.Popen([sys.executable, "-m", "kubesalt.minion_bootstrap.tunnel",  # noqa: S603
                                "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT)
    wait_for(lambda: b"carrying" in (directory / "tunnel.log").read_bytes()
             or process.poll() is not None, 30, "the tunnel to listen", interval=0.2)
    assert process.poll() is None, (directory / "tunnel.log").read_text()
    return process, listen


def test_a_minion_behind_a_one_port_proxy_answers_and_reconnects(site):
    controller, proxy = site
    controller.run_ok("cluster.create", "gw", "auto_approve=True",
                      "proxy={https: '%s'}" % proxy.url)
    dest = Path(tempfile.mkdtemp(prefix="ksg-creds-"))
    base = Path(tempfile.mkdtemp(prefix="ksgn-"))
    process = None
    node = None
    try:
        controller.run_ok("cluster.installer", "gw", f"dest={dest}")
        node = LoopbackNode.from_installer(base / "n1", dest, "gw", "aaaa0a01")
        # What conjurer learns from the credentials alone: the proxy, and the gateway.
        assert node.creds.proxy["https"] == proxy.url
        assert node.creds.controller["gateway_port"] == controller.gateway_port
        assert node.enroll()[0] == 200
        process, listen = _start_tunnel(node, base)
        node.start_minion(tunnel_ports=listen)
        wait_for(lambda: _ping(controller, node.id), 90, "test.ping through the proxy")
        connects = proxy.log.read_text().count(f"CONNECT 127.0.0.1:{controller.gateway_port}")
        assert connects >= 2  # publish and return, both through the proxy
        # Salt tells connected minions by address; through the gateway the gateway tells.
        presence = controller.root / "var" / "run" / "kubesalt-gateway.json"
        assert json.loads(presence.read_text()) == [node.id]
        assert controller.run_ok("node.show", node.id).get("connected") is True

        proxy.restart()
        wait_for(lambda: _ping(controller, node.id), 120, "test.ping after the proxy restart")
        assert proxy.log.read_text().count(
            f"CONNECT 127.0.0.1:{controller.gateway_port}") > connects
        assert SECRET not in (base / "tunnel.log").read_text()
    finally:
        if node is not None:
            node.stop_minion()
        if process is not None:
            process.terminate()
            process.wait(10)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
