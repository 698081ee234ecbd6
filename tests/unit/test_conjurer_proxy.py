"""conjurer behind a site's HTTP proxy (tinyproxy on loopback): the cluster's proxy arrives
in the credentials, -proxy overrides it, the controller is asked through it and its agent
gateway, and a proxy that will not carry the connection (or a controller without a gateway)
is a precheck failure that names it and the fix and changes nothing."""

import copy
import json
import subprocess
import sys
import threading
import types

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.endpoint import gateway
from kubesalt.master.inventory import clusters
from kubesalt.master.inventory.store import Store
from kubesalt.minion_bootstrap import cli, prechecks, proxy_connect
from tests.tinyproxy import TinyProxy
from tests.unit.test_conjurer_errors import (NODE, Controller, _args, _recording_agent,
                                             _tree, controller, issued, node_root)

__all__ = ["controller", "issued", "node_root"]  # fixtures shared with test_conjurer_errors
SECRET = "pr0xy-s3cret"
SETTINGS = {"advertise": "10.77.0.1", "publish_port": 4505, "ret_port": 4506,
            "https_port": 4507}


@pytest.fixture
def proxy(tmp_path):
    (tmp_path / "proxy").mkdir()
    started = TinyProxy(tmp_path / "proxy", auth=("alice", SECRET)).start()
    yield started
    started.stop()


class Gate:
    """The controller's agent gateway in front of the loopback endpoint."""

    def __init__(self, issued, ctl, directory):
        cert, key = issued.ca.issue_server_cert([], ["127.0.0.1"], 10)
        (directory / "g.crt").write_text(cert)
        (directory / "g.key").write_text(key)
        self.server = gateway.Gateway(("127.0.0.1", 0), directory / "g.crt", directory / "g.key",
                                      {"https": ("127.0.0.1", ctl.port)})
        self.port = self.server.address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _via(issued, ctl, proxy_url, gate_port):
    """The credentials of a node that reaches the loopback controller through `proxy_url`,
    and so through the agent gateway at `gate_port` (0: the controller has none)."""
    creds = copy.copy(issued.creds)
    creds.controller = dict(issued.creds.controller, address="127.0.0.1", https_port=ctl.port,
                            **({"gateway_port": gate_port} if gate_port else {}))
    creds.route = proxy_connect.Proxy(proxy_url)
    cli.choose_path(_args(), creds, NODE)
    return creds


def test_the_controller_is_asked_through_the_proxy_and_its_gateway(issued, controller, proxy,
                                                                    tmp_path):
    gate = Gate(issued, controller, tmp_path)
    try:
        answer, refused = cli.ask_controller(
            _via(issued, controller, proxy.url, gate.port), NODE,
            types.SimpleNamespace(held_public_key=lambda: None))
    finally:
        gate.server.close()
    assert (answer, refused) == ({"ok": True, "cluster": "edge1"}, None), refused
    assert f"CONNECT 127.0.0.1:{gate.port}" in proxy.log.read_text()
    assert len(controller.checked) == 1


@pytest.mark.parametrize("how,words", [
    ("no credentials", "asks for credentials (HTTP 407"),
    ("port refused", "refuses CONNECT to 127.0.0.1:{port} (HTTP 403"),
    ("no gateway", ""),
])
def test_a_proxy_that_will_not_connect_fails_the_prechecks_and_changes_nothing(
        issued, node_root, capsys, monkeypatch, tmp_path, how, words):
    ctl = Controller(issued.ca, tmp_path)
    gate = Gate(issued, ctl, tmp_path)
    (tmp_path / "p").mkdir()
    site = TinyProxy(tmp_path / "p", auth=("alice", SECRET),
                     connect_ports=[1] if how == "port refused" else None).start()
    try:
        url = f"http://127.0.0.1:{site.port}" if how == "no credentials" else site.url
        monkeypatch.setattr(prechecks, "CHECKS", (prechecks.check_os, prechecks.check_controller))
        before = _tree(node_root)
        node_agent, ran = _recording_agent(node_root)
        creds = _via(issued, ctl, url, 0 if how == "no gateway" else gate.port)
        code = cli.install(_args(), creds, NODE, node_agent)
    finally:
        site.stop()
        gate.server.close()
        ctl.close()
    out, err = capsys.readouterr()
    assert code == cli.EXIT_PRECHECK, out + err
    shown = proxy_connect.redact(url)
    if how == "no gateway":
        assert (f"[controller-gateway] the controller serves no agent gateway, and this node "
                f"reaches it through the proxy {shown}") in err
        assert "kubesalt-controller init --gateway-port 443" in err
    else:
        assert (f"[controller-gateway] cannot reach the controller's agent gateway "
                f"127.0.0.1:{gate.port} through the proxy {shown}: the proxy {shown} "
                + words.format(port=gate.port)) in err
        fix = ("give -proxy http://user:password@" if how == "no credentials"
               else f"tinyproxy ConnectPort {gate.port}")
        assert fix in err
    assert err.strip().splitlines()[-1].endswith("nothing on this node was changed")
    assert (_tree(node_root), ran) == (before, [])
    assert SECRET not in out + err


# ---- the proxy in the credentials, and -proxy ------------------------------------------------

@pytest.fixture(scope="module")
def proxied_files(tmp_path_factory):
    """Credentials of a cluster created with a proxy, written by cluster.installer."""
    base = tmp_path_factory.mktemp("proxied")
    store = Store(base / "state")
    clusters.create(store, "edge1", proxy={"https": f"http://alice:{SECRET}@proxy.site:3128",
                                           "no_proxy": "192.168.0.0/16"})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (base / "master.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return clusters.installer(store, SETTINGS, base / "pki", base / "master.pub", "edge1",
                              str(base / "out"))


def _load(files, proxy=None):
    return cli.load_credentials(types.SimpleNamespace(
        edge_name="edge1", passphrase_file=files["passphrase_file"],
        creds_file=files["creds_file"], proxy=proxy))


def test_the_cluster_proxy_comes_with_the_credentials(proxied_files):
    creds = _load(proxied_files)
    assert creds.route.shown == "http://***@proxy.site:3128"
    assert (creds.route.host, creds.route.port, creds.route.has_credentials) == \
        ("proxy.site", 3128, True)


def test_proxy_flag_overrides_or_goes_direct(proxied_files):
    assert _load(proxied_files, "http://other.site:8080").route.shown == \
        "http://other.site:8080"
    assert _load(proxied_files, proxy_connect.DIRECT).route is None


def test_a_bad_proxy_flag_is_a_usage_error_without_the_password(proxied_files):
    with pytest.raises(cli.UsageError) as caught:
        _load(proxied_files, f"socks5://bob:{SECRET}@p:1080")
    assert str(caught.value).startswith("-proxy 'socks5://***@p:1080' is not a proxy URL")
    assert SECRET not in str(caught.value)


def test_proxy_flag_is_in_the_help():
    assert "-proxy URL" in cli.__doc__ and "-proxy direct" in cli.__doc__
    assert cli.parser().parse_args(["-proxy", "direct"]).proxy == "direct"


# ---- the agent behind the gateway: tunnel beside the minion -----------------------------------

def test_behind_the_gateway_the_agent_gets_a_tunnel_unit_beside_the_minion(tmp_path, issued):
    from kubesalt.minion_bootstrap import agent as agent_mod

    root = tmp_path / "node"
    (root / "run/systemd/system").mkdir(parents=True)
    ran = []
    node_agent = agent_mod.Agent(root=str(root), run=lambda argv, **kw: ran.append(argv) or
                                 types.SimpleNamespace(returncode=0, stdout="", stderr=""))
    creds = copy.copy(issued.creds)
    creds.controller = dict(issued.creds.controller, gateway_port=443)
    creds.route = proxy_connect.Proxy(f"http://alice:{SECRET}@proxy.site:3128")
    cli.choose_path(_args(), creds, NODE)
    node_agent.configure(NODE.name, "edge1", creds.controller, cli._tunnel_config(creds, NODE))
    node_agent.start(timeout=1)

    minion = json.loads((root / "opt/kubesalt/salt/etc/salt/minion.d/kubesalt.conf").read_text())
    assert (minion["master"], minion["publish_port"], minion["master_port"]) == \
        ("127.0.0.1", 45505, 45506)
    assert minion["master_finger"] == creds.controller["master_finger"]
    config = root / "opt/kubesalt/tunnel.json"
    assert config.stat().st_mode & 0o777 == 0o600
    assert json.loads(config.read_text())["proxy"] == creds.route.url
    minion_unit = (root / "etc/systemd/system/kubesalt-minion.service").read_text()
    assert "Requires=kubesalt-tunnel.service\nAfter=kubesalt-tunnel.service" in minion_unit
    tunnel_unit = (root / "etc/systemd/system/kubesalt-tunnel.service").read_text()
    assert "Before=kubesalt-minion.service" in tunnel_unit
    assert ["systemctl", "restart", "kubesalt-tunnel.service"] in ran
    assert ran.index(["systemctl", "restart", "kubesalt-tunnel.service"]) < \
        ran.index(["systemctl", "restart", "kubesalt-minion.service"])
    # The copied tunnel runs on its own, from its directory, as the unit starts it.
    proc = subprocess.run([sys.executable, "-m", "kubesalt_tunnel.tunnel", "--help"],
                          cwd=root / "opt/kubesalt/tunnel", capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0 and "--config" in proc.stdout

    node_agent.configure(NODE.name, "edge1", creds.controller, None)  # a rerun, direct
    assert not config.exists() and not (root / "opt/kubesalt/tunnel").exists()
