"""conjurer's CONNECT client against Debian's tinyproxy on loopback: auth, refusals in the
site's words, no_proxy, redaction, and TLS that stays pinned to the controller CA."""

import socket
import ssl

import pytest

from kubesalt.master.trust import pki
from kubesalt.minion_bootstrap import probes, proxy_connect
from tests.serving import LoopbackListener
from tests.tinyproxy import TinyProxy

SECRET = "pr0xy-s3cret"


def _echo_once(conn):
    """Answers a connection with what it reads, so a tunnel can be seen carrying bytes."""
    with conn:
        conn.sendall(conn.recv(100))


@pytest.fixture
def echo():
    server = LoopbackListener(_echo_once)
    yield server
    server.close()


@pytest.fixture
def proxy_factory(tmp_path):
    started = []

    def start(**kwargs):
        directory = tmp_path / f"proxy{len(started)}"
        directory.mkdir()
        proxy = TinyProxy(directory, **kwargs).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def _through(proxy_url, port):
    with proxy_connect.open_connection("127.0.0.1", port, proxy_connect.Proxy(proxy_url),
                                       timeout=10) as sock:
        sock.sendall(b"ping")
        return sock.recv(4)


def test_a_tunnel_carries_bytes(proxy_factory, echo):
    assert _through(proxy_factory().url, echo.port) == b"ping"


def test_basic_auth_from_the_url(proxy_factory, echo):
    proxy = proxy_factory(auth=("alice", SECRET))
    assert _through(proxy.url, echo.port) == b"ping"


def test_407_asks_for_credentials_and_says_how_to_give_them(proxy_factory, echo):
    proxy = proxy_factory(auth=("alice", SECRET))
    with pytest.raises(proxy_connect.ProxyError) as caught:
        _through(f"http://127.0.0.1:{proxy.port}", echo.port)
    assert caught.value.message.startswith(
        f"the proxy http://127.0.0.1:{proxy.port} asks for credentials (HTTP 407")
    assert caught.value.fix.startswith(
        f"give -proxy http://user:password@127.0.0.1:{proxy.port}")


def test_wrong_credentials_are_named_without_showing_them(proxy_factory, echo):
    proxy = proxy_factory(auth=("alice", SECRET))
    with pytest.raises(proxy_connect.ProxyError) as caught:
        _through(f"http://alice:wrong-{SECRET}@127.0.0.1:{proxy.port}", echo.port)
    assert f"the proxy http://***@127.0.0.1:{proxy.port} refuses the user and password" \
        in str(caught.value)
    assert SECRET not in str(caught.value) and "alice" not in str(caught.value)


def test_a_port_the_proxy_will_not_connect_to(proxy_factory, echo):
    proxy = proxy_factory(connect_ports=[443])
    with pytest.raises(proxy_connect.ProxyError) as caught:
        _through(proxy.url, echo.port)
    assert caught.value.message == (f"the proxy {proxy.url} refuses CONNECT to "
                                    f"127.0.0.1:{echo.port} (HTTP 403 Access violation)")
    assert f"tinyproxy ConnectPort {echo.port}" in caught.value.fix
    assert "squid SSL_ports" in caught.value.fix and "single-port" in caught.value.fix


def test_a_controller_the_proxy_cannot_reach(proxy_factory):
    proxy = proxy_factory()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(proxy_connect.ProxyError, match=f"could not reach the controller at "
                                                       f"127.0.0.1:{port}"):
        _through(proxy.url, port)


def test_an_unreachable_proxy_is_named_with_the_fix(echo):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(proxy_connect.ProxyError) as caught:
        _through(f"http://bob:{SECRET}@127.0.0.1:{port}", echo.port)
    assert caught.value.message == (f"cannot reach the proxy http://***@127.0.0.1:{port} "
                                    "(Connection refused)")
    assert "-proxy" in caught.value.fix and SECRET not in str(caught.value)


def test_something_that_is_not_a_proxy(echo):
    with pytest.raises(proxy_connect.ProxyError, match="which is not HTTP|instead of answering"):
        _through(f"http://127.0.0.1:{echo.port}", echo.port)


# ---- which proxy, if any, reaches the controller ---------------------------------------------

@pytest.mark.parametrize("no_proxy,host,direct", [
    ("10.77.0.1", "10.77.0.1", True),
    ("10.77.0.2", "10.77.0.1", False),
    ("10.0.0.0/8", "10.77.0.1", True),
    ("192.168.0.0/16,10.77.0.0/24", "10.77.0.9", True),
    ("10.0.0.0/8", "controller.site", False),
    (".site", "controller.site", True),
    ("site", "controller.site", True),
    ("*.site", "controller.site", True),
    ("site", "notthesite", False),
    ("controller.site", "controller.site.", True),
    ("fd00::/8", "fd00::1", True),
    ("[fd00::1]", "fd00::1", True),
    ("*", "anything", True),
    ("", "10.77.0.1", False),
])
def test_no_proxy_hosts_domains_and_cidrs(no_proxy, host, direct):
    assert proxy_connect.bypassed(no_proxy, host) is direct


def test_the_cluster_https_proxy_is_preferred_and_no_proxy_honoured():
    settings = {"http": "http://h:3128", "https": "http://s:3129", "no_proxy": "10.0.0.0/8",
                "root_ca": ""}
    assert proxy_connect.choose(settings, None, "192.168.1.1").shown == "http://s:3129"
    assert proxy_connect.choose(dict(settings, https=""), None, "192.168.1.1").port == 3128
    assert proxy_connect.choose(settings, None, "10.77.0.1") is None
    assert proxy_connect.choose(None, None, "10.77.0.1") is None


def test_proxy_flag_overrides_the_cluster_for_this_node():
    settings = {"http": "http://h:3128", "https": "", "no_proxy": "", "root_ca": ""}
    assert proxy_connect.choose(settings, "http://other:8080", "10.77.0.1").host == "other"
    assert proxy_connect.choose(settings, proxy_connect.DIRECT, "10.77.0.1") is None
    assert proxy_connect.choose(None, "http://other:8080", "10.77.0.1").port == 8080


@pytest.mark.parametrize("url", [f"ftp://u:{SECRET}@h:21", f"http://u:{SECRET}@:3128",
                                 f"http://u:{SECRET}@h:port", "h:3128", f"http://u:{SECRET}@h/x"])
def test_a_bad_proxy_url_is_refused_naming_the_flag_without_the_password(url):
    with pytest.raises(ValueError) as caught:
        proxy_connect.choose(None, url, "10.77.0.1")
    assert str(caught.value).startswith("-proxy ")
    assert "http://[user:password@]host:port" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_redact_hides_user_and_password():
    assert proxy_connect.redact(f"http://alice:{SECRET}@p:3128") == "http://***@p:3128"
    assert proxy_connect.redact("http://p:3128") == "http://p:3128"
    assert SECRET not in repr(proxy_connect.Proxy(f"http://alice:{SECRET}@p:3128"))


# ---- TLS inside the tunnel is the controller's, verified against the controller CA ----------

class TlsServer(LoopbackListener):
    """Answers one HTTPS request with a 404, with a certificate from `ca`."""

    def __init__(self, ca, directory):
        cert, key = ca.issue_server_cert([], ["127.0.0.1"], 10)
        (directory / "s.crt").write_text(cert)
        (directory / "s.key").write_text(key)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "s.crt", directory / "s.key")
        super().__init__(self._answer)

    def _answer(self, conn):
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = tls.recv(1024)
                    if not chunk:
                        break
                    request += chunk
                tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                            b"Date: Sat, 28 Nov 2026 06:00:00 GMT\r\nConnection: close"
                            b"\r\n\r\n")
        except (ssl.SSLError, OSError):
            pass


def test_controller_tls_through_the_proxy(proxy_factory, tmp_path):
    ca = pki.ensure_ca(tmp_path / "ca")
    server = TlsServer(ca, tmp_path)
    try:
        proxy = proxy_connect.Proxy(proxy_factory(auth=("alice", SECRET)).url)
        reading = probes.https_clock("127.0.0.1", server.port, probes.clock_context(ca.cert_pem),
                                     connect_with=proxy_connect.connector(proxy))
        assert reading.reference > 0
    finally:
        server.close()


def test_the_proxy_root_ca_never_vouches_for_the_controller(proxy_factory, tmp_path):
    """An intercepting proxy's CA is given as the proxy's root_ca: a server with a certificate
    from it, posing as the controller, is still refused."""
    controller_ca = pki.ensure_ca(tmp_path / "controller-ca")
    interceptor_ca = pki.ensure_ca(tmp_path / "interceptor-ca")
    impostor = TlsServer(interceptor_ca, tmp_path)
    try:
        proxy = proxy_connect.Proxy(proxy_factory().url, root_ca=interceptor_ca.cert_pem)
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            probes.https_clock("127.0.0.1", impostor.port,
                               probes.clock_context(controller_ca.cert_pem),
                               connect_with=proxy_connect.connector(proxy))
        message, fix = probes.describe_network_error(caught.value, "127.0.0.1", impostor.port)
        assert "does not match the controller CA" in message and "intercepts TLS" in fix
    finally:
        impostor.close()
