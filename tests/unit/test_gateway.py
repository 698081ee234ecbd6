"""The agent gateway and the node tunnel on loopback: TLS pinned to the controller CA, the
preface routes each channel, the gateway records live publish channels, and the tunnel backs
off while the gateway is down."""

import json
import socket
import ssl

import pytest

from kubesalt.master.endpoint import gateway
from kubesalt.master.trust import pki
from kubesalt.minion_bootstrap import tunnel
from tests.serving import LoopbackListener, serve_in_background
from tests.waiting import wait_for


class Echo(LoopbackListener):
    """Answers everything a connection sends, prefixed with `tag` (which port it reached)."""

    def __init__(self, tag):
        self.tag = tag
        super().__init__(self._answer)

    def _answer(self, conn):
        with conn:
            while True:
                data = conn.recv(100)
                if not data:
                    return
                conn.sendall(self.tag + data)


@pytest.fixture
def controller_ca(tmp_path):
    return pki.ensure_ca(tmp_path / "ca")


@pytest.fixture
def gate(tmp_path, controller_ca):
    cert, key = controller_ca.issue_server_cert([], ["127.0.0.1"], 10)
    (tmp_path / "g.crt").write_text(cert)
    (tmp_path / "g.key").write_text(key)
    echoes = {channel: Echo(channel.encode() + b":") for channel in ("publish", "return")}
    server = gateway.Gateway(("127.0.0.1", 0), tmp_path / "g.crt", tmp_path / "g.key",
                             {c: ("127.0.0.1", e.port) for c, e in echoes.items()},
                             presence_file=tmp_path / "run" / "presence.json")
    serve_in_background(server)
    yield server
    server.close()


def _channel(gate, controller_ca, channel, node_id="node-1"):
    return tunnel.open_channel("127.0.0.1", gate.address[1], channel, node_id,
                               tunnel.gateway_context(controller_ca.cert_pem))


def test_each_channel_reaches_its_own_port(gate, controller_ca):
    for channel in ("publish", "return"):
        with _channel(gate, controller_ca, channel) as sock:
            sock.sendall(b"hello")
            assert sock.recv(100) == channel.encode() + b":hello"


def test_live_publish_channels_are_recorded_by_node(gate, controller_ca):
    presence = gate.presence_file
    assert gateway.connected(presence) == set()
    sock = _channel(gate, controller_ca, "publish", "node-7")
    sock.sendall(b"x")
    sock.recv(10)
    assert gateway.connected(presence) == {"node-7"}
    sock.close()
    wait_for(lambda: gateway.connected(presence) == set(), 10, "node-7 to be gone",
             interval=0.1)
    assert json.loads(presence.read_text()) == []


def test_a_gateway_with_another_ca_is_refused(gate, tmp_path):
    stranger = pki.ensure_ca(tmp_path / "stranger")
    with pytest.raises(ssl.SSLCertVerificationError):
        _channel(gate, stranger, "publish")


@pytest.mark.parametrize("line", [b"GET / HTTP/1.1\n", b"KUBESALT-GATEWAY/1 ssh node-1\n",
                                  b"KUBESALT-GATEWAY/1 publish ../x\n"])
def test_anything_but_a_preface_is_closed(gate, controller_ca, line):
    raw = socket.create_connection(gate.address, timeout=10)
    with tunnel.gateway_context(controller_ca.cert_pem).wrap_socket(
            raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(line + b"hello")
        assert sock.recv(100) == b""


def test_preface_round_trip_and_refusals():
    assert tunnel.parse_preface(tunnel.preface("return", "node-a")) == ("return", "node-a")
    with pytest.raises(ValueError):
        tunnel.preface("ssh", "node-a")


def test_the_tunnel_carries_the_minion_ports_and_backs_off_when_the_gateway_is_down(
        gate, controller_ca):
    node = tunnel.Tunnel("127.0.0.1", gate.address[1], "node-1", controller_ca.cert_pem,
                         {"publish": 0, "return": 0})
    serve_in_background(node)
    try:
        with socket.create_connection(("127.0.0.1", node.ports["return"]), timeout=10) as s:
            s.sendall(b"ping")
            assert s.recv(100) == b"return:ping"
        gate.close()
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", node.ports["publish"]), timeout=60) \
                    as s:
                assert s.recv(10) == b""  # the tunnel hangs up: no gateway to carry it to
        assert node.backoff["publish"].failures == 3
        assert node.backoff["publish"].delay() == 2.0
        assert node.backoff["return"].failures == 0
    finally:
        node.stop()


def test_backoff_doubles_up_to_its_cap():
    backoff = tunnel.Backoff()
    delays = []
    for _ in range(9):
        delays.append(backoff.delay())
        backoff.failures += 1
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_init_gateway_port_turns_the_engine_on_and_off(tmp_path):
    from kubesalt.master import cli as controller_cli
    from kubesalt.master.controller import config
    from kubesalt.master.layout import Layout

    layout = Layout.for_root(tmp_path)
    engines = [next(iter(e)) for e in config.kubesalt_config(
        layout, config.settings_for(layout, gateway_port=443))["engines"]]
    assert "kubesalt_gateway" in engines
    engines = [next(iter(e)) for e in config.kubesalt_config(
        layout, config.settings_for(layout))["engines"]]
    assert "kubesalt_gateway" not in engines
    args = controller_cli.parser().parse_args(["init", "--gateway-port", "443"])
    assert args.gateway_port == 443
    with pytest.raises(SystemExit):
        controller_cli.parser().parse_args(["init", "--gateway-port", "https"])
