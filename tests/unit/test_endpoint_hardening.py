"""The node endpoint against hostile clients (issue 12): silent connections, slow requests,
bad input, replayed enrollments. EndpointServer in-process on loopback with a throwaway CA;
the enrollment calls behind it are the real ones on a real store."""

import base64
import json
import logging
import os
import selectors
import socket
import ssl
import threading
import time
import types
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.endpoint import server as endpoint
from kubesalt.master.endpoint import enrollment
from kubesalt.master.trust import pki
from kubesalt.master.inventory.store import Store
from kubesalt.minion_bootstrap import credentials as creds
from tests.specs import cluster_spec
from tests.serving import serve_in_background

ARTIFACT = os.urandom(300 * 1024)
NODE_ID = "node-abcd-127-0-0-1-edge1"


def wait_until(what, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """CA, endpoint certificate, an artifact, and installer credentials as conjurer has them."""
    base = tmp_path_factory.mktemp("endpoint")
    ca = pki.ensure_ca(base / "pki")
    cert, key = ca.issue_server_cert(["localhost"], ["127.0.0.1"], 10)
    (base / "pki" / "endpoint.crt").write_text(cert)
    (base / "pki" / "endpoint.key").write_text(key)
    (base / "artifacts" / "agent").mkdir(parents=True)
    (base / "artifacts" / "agent" / "bundle.bin").write_bytes(ARTIFACT)
    installer = pki.issue_installer(ca, "edge1", 30)
    passphrase = creds.generate_passphrase()
    controller = {"address": "127.0.0.1", "publish_port": 4505, "ret_port": 4506,
                  "https_port": 4507, "master_finger": "ab:cd"}
    text = creds.seal("edge1", controller, ca.cert_pem, installer.cert_pem, installer.serial,
                      installer.not_after, installer.private_numbers, passphrase)
    minion_pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() \
        .public_bytes(serialization.Encoding.PEM,
                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    client = ssl.create_default_context(cafile=str(base / "pki" / "ca.crt"))
    return types.SimpleNamespace(base=base, installer=installer, minion_pub=minion_pub,
                                 opened=creds.open_credentials(text, passphrase, "edge1"),
                                 client=client)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def errors(self):
        return [r for r in self.records if r.levelno >= logging.ERROR]


@pytest.fixture(autouse=True)
def endpoint_log(monkeypatch):
    """The endpoint's log records, kept here only: salt-factories leaves a deferred stderr
    handler on the root logger, which would print them after the session."""
    records = _Records()
    logger = logging.getLogger("kubesalt.master.endpoint.server")
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "handlers", [records])
    return records


def _answering(call):
    """What the engine makes of an enrollment call: its refusals as JSON answers."""
    def handler(payload, address):
        try:
            return 200, call(payload, address)
        except enrollment.EnrollmentRefused as exc:
            return exc.code, {"error": str(exc), "reason": exc.reason}
    return handler


@pytest.fixture
def start(site, tmp_path):
    """start(**options) -> (server, port): an endpoint with the real enrollment calls."""
    store = Store(tmp_path / "state")
    store.create_cluster("edge1", cluster_spec(name="edge1", auto_approve=False))
    store.add_installer("edge1", site.installer.serial, time.time() - 60,
                        site.installer.not_after.timestamp())
    layout = types.SimpleNamespace(kubesalt_pki=site.base / "pki", pki_dir=tmp_path / "salt")
    servers = []

    def starter(enroll=None, **options):
        enroll = enroll or _answering(
            lambda payload, address: enrollment.enroll(store, layout, payload, address))
        check = _answering(lambda payload, address: enrollment.check(store, layout, payload))
        server = endpoint.EndpointServer(("127.0.0.1", 0), site.base / "artifacts",
                                         site.base / "pki" / "endpoint.crt",
                                         site.base / "pki" / "endpoint.key",
                                         enroll=enroll, check=check, **options)
        thread = serve_in_background(server)
        servers.append((server, thread))
        return server, server.server_address[1]

    yield starter
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def enroll_body(site, now=None):
    opened = site.opened
    request, signature = opened.enrollment_request(NODE_ID, site.minion_pub,
                                                   time.time() if now is None else now)
    return {"request": request, "signature": signature,
            "installer_cert": opened.installer_cert_pem, "minion_pub": site.minion_pub}


def download(site, port, path="/artifacts/agent/bundle.bin", timeout=10):
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=site.client,
                                timeout=timeout) as resp:
        return resp.read()


def post(site, port, path, payload, timeout=10):
    """(status, JSON answer) of a POST made as conjurer makes it."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=data,
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=site.client, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def raw_exchange(site, port, data, timeout=10):
    """(status, body) for request bytes no HTTP client library would send."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
            site.client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(data)
        received = b""
        while chunk := tls.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head, "the connection closed without an answer"
    return int(head.split()[1]), body


def open_silent(port, count, source="127.0.0.1", timeout=10):
    """`count` TCP connections that never send a byte. Connected without blocking, so a server
    that does not accept cannot stall the test here."""
    sockets, selector = [], selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((source, 0))
        sock.connect_ex(("127.0.0.1", port))
        sockets.append(sock)
        selector.register(sock, selectors.EVENT_WRITE)
    deadline = time.monotonic() + timeout
    waiting = count
    while waiting and time.monotonic() < deadline:
        for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
            selector.unregister(key.fileobj)
            waiting -= 1
    selector.close()
    return sockets


def close_all(sockets):
    for sock in sockets:
        sock.close()


def closed_by_server(sock, timeout=10):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# ---- (a) silent connections stop nothing ---------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"max_per_address": 300}],
                         ids=["default-caps", "all-200-held"])
def test_200_silent_connections_stop_neither_downloads_nor_enrollment(site, start, options):
    server, port = start(**options)
    silent = open_silent(port, 200)
    try:
        started = time.monotonic()
        assert download(site, port, timeout=2) == ARTIFACT
        assert time.monotonic() - started < 2
        started = time.monotonic()
        status, answer = post(site, port, "/v1/enroll", enroll_body(site), timeout=2)
        assert (status, answer["status"]) == (200, "DISCOVERED")
        assert time.monotonic() - started < 2
    finally:
        close_all(silent)


def test_silent_connections_hold_no_thread(start):
    server, port = start(max_per_address=300)
    before = threading.active_count()
    silent = open_silent(port, 200)
    try:
        wait_until("200 connections open", lambda: server.open_connections() == 200)
        assert threading.active_count() - before < 5
    finally:
        close_all(silent)
    wait_until("the connections to be gone", lambda: server.open_connections() == 0)


def test_a_silent_connection_is_closed_after_the_handshake_timeout(site, start):
    server, port = start(handshake_timeout=0.2)
    [sock] = open_silent(port, 1)
    with sock:
        assert closed_by_server(sock)
    assert server.stats["timed_out"] == 1
    assert download(site, port) == ARTIFACT


def test_a_request_trickled_in_is_cut_off_at_the_read_timeout(site, start):
    server, port = start(read_timeout=0.3)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            site.client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /artifacts/agent/bun")
        assert tls.recv(1) == b""
    wait_until("the connection to be gone", lambda: server.open_connections() == 0)


def test_at_the_address_cap_the_oldest_silent_connection_makes_room(site, start):
    server, port = start(max_per_address=2)
    first, second = open_silent(port, 2)
    with first, second:
        wait_until("2 connections open", lambda: server.open_connections() == 2)
        [third] = open_silent(port, 1)
        with third:
            assert closed_by_server(first)
            assert server.stats["evicted"] == 1
            assert server.open_connections() == 2
            # another address has its own slots
            [other] = open_silent(port, 1, source="127.0.0.2")
            with other:
                wait_until("3 connections open", lambda: server.open_connections() == 3)
        assert download(site, port) == ARTIFACT


def test_over_the_address_cap_a_new_connection_is_refused_when_none_is_silent(site, start):
    server, port = start(max_per_address=1)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            site.client.wrap_socket(raw, server_hostname="127.0.0.1"):
        # handshake done, request not sent: the connection is being served
        [refused] = open_silent(port, 1)
        with refused:
            assert closed_by_server(refused)
        assert server.stats["refused"] == 1
    wait_until("the slot to be free", lambda: server.open_connections() == 0)
    assert download(site, port) == ARTIFACT


def test_the_overall_cap_holds_across_addresses(site, start):
    server, port = start(max_connections=3)
    silent = [sock for n in range(2, 7) for sock in open_silent(port, 1, f"127.0.0.{n}")]
    try:
        wait_until("evictions", lambda: server.stats["evicted"] == 2)
        assert server.open_connections() == 3
        assert download(site, port) == ARTIFACT
    finally:
        close_all(silent)


# ---- (b) bad input is answered 400, nothing on stderr --------------------------------------

def _post_bytes(path, body):
    return (f"POST {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _check_body(site):
    request, signature = site.opened.check_request(NODE_ID, time.time())
    return {"request": request, "signature": signature,
            "installer_cert": site.opened.installer_cert_pem}


def _with_issued_at(body, text):
    """The body as JSON text with issued_at spelled `text`, which json.dumps would not write."""
    body["request"]["issued_at"] = 1234
    encoded = json.dumps(body)
    assert encoded.count('"issued_at": 1234') == 1
    return encoded.replace('"issued_at": 1234', f'"issued_at": {text}').encode()


@pytest.mark.parametrize("make,reason", [
    (lambda site: _post_bytes("/v1/enroll", _with_issued_at(enroll_body(site), "9" * 400)),
     "malformed"),
    (lambda site: _post_bytes("/v1/installer/check",
                              _with_issued_at(_check_body(site), "9" * 400)), "malformed"),
    (lambda site: b"GET /artifacts/agent/%00 HTTP/1.0\r\n\r\n", "bad-path"),
    (lambda site: b"GET /artifacts/agent/bundle.bin\x00 HTTP/1.0\r\n\r\n", "bad-path"),
    (lambda site: b"HEAD /artifacts/%00/x HTTP/1.0\r\n\r\n", "bad-path"),
    (lambda site: _post_bytes("/v1/enroll%00", b"{}"), "bad-path"),
    (lambda site: _post_bytes("/v1/enroll", b"[" * 30000 + b"]" * 30000), "malformed"),
    (lambda site: _post_bytes("/v1/installer/check", _with_issued_at(_check_body(site), "NaN")),
     "malformed"),
], ids=["400-digit-issued_at", "400-digit-issued_at-check", "nul-escaped", "nul-raw",
        "nul-head", "nul-post-path", "30000-deep", "NaN-literal"])
def test_bad_input_is_answered_400_with_a_reason(site, start, capfd, endpoint_log, make,
                                                  reason):
    _, port = start()
    request = make(site)
    status, body = raw_exchange(site, port, request)
    assert status == 400
    if not request.startswith(b"HEAD"):
        answer = json.loads(body)
        assert answer["reason"] == reason and answer["error"]
    assert download(site, port) == ARTIFACT
    assert "Traceback" not in capfd.readouterr().err
    assert endpoint_log.errors() == []


def test_an_unexpected_error_is_logged_and_answered_500(site, start, capfd, endpoint_log):
    def broken(payload, address):
        raise RuntimeError("the handler broke")

    _, port = start(enroll=broken)
    status, answer = post(site, port, "/v1/enroll", {"request": {}})
    assert status == 500
    assert answer["reason"] == "internal" and "broke" not in json.dumps(answer)
    assert "Traceback" not in capfd.readouterr().err
    [record] = endpoint_log.errors()
    assert record.exc_info and "the handler broke" in str(record.exc_info[1])


def test_http_servers_own_refusals_are_json(site, start):
    _, port = start()
    status, body = raw_exchange(site, port, b"GET /x y HTTP/1.0\r\n\r\n")
    assert status == 400 and "Bad request syntax" in json.loads(body)["error"]


# ---- (c, d) over HTTPS: non-finite times and replays are refused ---------------------------

@pytest.mark.parametrize("issued_at", ["nan", "inf"])
def test_a_signed_enrollment_with_a_non_finite_time_is_refused(site, start, issued_at):
    _, port = start()
    body = enroll_body(site)
    body["request"]["issued_at"] = issued_at
    body["signature"] = base64.b64encode(
        site.opened.sign(creds.canonical_json(body["request"]))).decode()
    status, answer = post(site, port, "/v1/enroll", body)
    assert (status, answer["reason"]) == (400, "malformed")


def test_a_replayed_enrollment_is_refused_and_conjurers_rerun_is_not(site, start):
    _, port = start()
    now = int(time.time())
    body = enroll_body(site, now)
    assert post(site, port, "/v1/enroll", body)[0] == 200
    status, answer = post(site, port, "/v1/enroll", body)
    assert (status, answer["reason"]) == (403, "replay")
    status, answer = post(site, port, "/v1/enroll", enroll_body(site, now + 1))
    assert (status, answer["status"]) == (200, "DISCOVERED")
