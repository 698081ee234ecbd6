"""The REST API against a hostile client (issue 12), on a real controller over HTTPS on
loopback: body size, JSON nesting, batch size, Content-Type, what GET / tells, failed-login
throttling, and idle connections that must not stop the API.

Failed logins are counted per client address, so tests that count them connect from their own
loopback address (127.0.0.N) and do not disturb each other."""

import concurrent.futures
import http.client
import json
import select
import socket
import ssl
import time

import pytest
import requests
import requests.adapters

from .controller import running

pytestmark = pytest.mark.integration

OPERATOR = ("olga", "op-Secret-4711")
VIEWER = ("victor", "view-Secret-0815")
MB = 1024 * 1024


@pytest.fixture(scope="module")
def ctl():
    with running("ksl-", [(OPERATOR[0], "operator", OPERATOR[1]),
                          (VIEWER[0], "viewer", VIEWER[1])]) as controller:
        # The master may still be starting its workers: the first login can take ~20 s.
        assert Client(controller).login(*VIEWER, timeout=90).status_code == 200
        yield controller


class _FromAddress(requests.adapters.HTTPAdapter):
    def __init__(self, address):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Client:
    """An HTTPS client that trusts only the controller CA, connecting from `source`."""

    def __init__(self, ctl, source="127.0.0.1"):
        self.url = ctl.api_url
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = str(ctl.ca_file)
        self.session.mount("https://", _FromAddress(source))
        self.token = None

    def login(self, user, password, timeout=30):
        resp = self.session.post(f"{self.url}/login", timeout=timeout, json={
            "username": user, "password": password, "eauth": "file"})
        if resp.status_code == 200:
            self.token = resp.headers["X-Auth-Token"]
        return resp

    def post(self, path="/", **kwargs):
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["X-Auth-Token"] = self.token
        self.session.cookies.clear()
        return self.session.post(f"{self.url}{path}", headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def operator(ctl):
    client = Client(ctl)
    assert client.login(*OPERATOR).status_code == 200
    return client


def _tls(ctl, timeout=10):
    context = ssl.create_default_context(cafile=str(ctl.ca_file))
    sock = socket.create_connection((ctl.interface, ctl.api_port), timeout=timeout)
    return context.wrap_socket(sock, server_hostname=ctl.interface)


def _raw(ctl, path, headers, parts=(), timeout=10):
    """Send a request head and body parts on one TLS connection, stop sending when the server
    has closed, and return (status, headers, body) of its answer."""
    with _tls(ctl, timeout) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: {ctl.interface}:{ctl.api_port}",
                "Accept: application/json", *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for part in parts:
            try:
                sock.sendall(part)
            except OSError:  # answered and closed before the whole body was sent
                break
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, resp.headers, resp.read()


def _nested(depth, leaf='"x"'):
    return "[" * depth + leaf + "]" * depth


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


# --- body size ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/login", "/"])
def test_a_body_announced_over_1mb_is_refused_before_it_is_read(ctl, path):
    """Before login: only the head and a byte of a 50 MB body are sent; the answer comes at
    once, it does not wait for the rest."""
    status, _, _ = _raw(ctl, path, {"Content-Type": "application/json",
                                    "Content-Length": str(50 * 1000 * 1000)}, [b"{"], timeout=5)
    assert status == 413
    status, _, _ = _raw(ctl, path, {"Content-Type": "application/json",
                                    "Content-Length": str(MB + 1)}, [b"{"], timeout=5)
    assert status == 413


def test_a_chunked_body_over_1mb_is_refused_while_it_is_read(ctl):
    chunk = b" " * (64 * 1024)
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (MB // len(chunk) + 1)
    status, headers, body = _raw(ctl, "/login", {"Content-Type": "application/json",
                                                 "Transfer-Encoding": "chunked"}, parts)
    assert status == 413, body
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["status"] == 413


def test_a_chunked_body_under_the_cap_is_read(ctl):
    body = json.dumps({"username": VIEWER[0], "password": VIEWER[1], "eauth": "file"}).encode()
    status, _, answer = _raw(ctl, "/login", {"Content-Type": "application/json",
                                             "Transfer-Encoding": "chunked"},
                             [b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)])
    assert status == 200, answer
    assert json.loads(answer)["return"][0]["user"] == VIEWER[0]


def test_a_body_just_under_1mb_is_accepted(ctl):
    body = json.dumps({"username": VIEWER[0], "password": VIEWER[1], "eauth": "file"})
    resp = Client(ctl).post("/login", data=body + " " * (1000 * 1000 - len(body)),
                            headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text


# --- nesting -----------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [33, 1000, 100 * 1000])
def test_deep_nesting_is_400_before_login(ctl, depth):
    for body in (_nested(depth), '{"a": ' * depth + "1" + "}" * depth):
        resp = Client(ctl).post("/login", data=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400, resp.text
        assert "nested deeper than 32" in resp.json()["return"]


@pytest.mark.parametrize("depth", [33, 1000, 100 * 1000])
def test_deep_nesting_is_400(operator, depth):
    labels = _nested(depth - 2)  # inside the body and labels
    body = '{"client": "runner", "fun": "cluster.create", "name": "deep", "labels": {"a": %s}}'
    resp = operator.post(data=body % labels, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert "nested deeper than 32" in resp.json()["return"]


def test_nesting_within_the_bound_reaches_the_checks(operator):
    body = '{"client": "runner", "fun": "cluster.create", "name": "deep", "labels": {"a": %s}}'
    resp = operator.post(data=body % _nested(30), headers={"Content-Type": "application/json"})
    assert resp.status_code == 400, resp.text
    (refusal,) = resp.json()["return"]
    assert refusal["errors"] == [{"field": "labels.a", "message": "must be a string"}]


# --- batch size --------------------------------------------------------------------------

def test_at_most_10_calls_per_request(operator):
    call = {"client": "runner", "fun": "cluster.list"}
    resp = operator.post(json=[call] * 11)
    assert resp.status_code == 400, resp.text
    assert "at most 10 calls" in resp.json()["return"]
    resp = operator.post(json=[call] * 10)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["return"]) == 10


# --- Content-Type ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/login"])
def test_bodies_that_are_not_json_are_415(ctl, operator, path):
    client = operator if path == "/" else Client(ctl)
    body = b'{"client": "runner", "fun": "cluster.list"}'
    assert client.post(path, data=body).status_code == 415  # no Content-Type at all
    resp = client.post(path, files={"body": ("body.json", body, "application/json")})
    assert resp.request.headers["Content-Type"].startswith("multipart/form-data")
    assert resp.status_code == 415
    assert "application/json" in resp.json()["return"]
    for kind in ("text/plain", "application/x-yaml", "application/x-www-form-urlencoded"):
        assert client.post(path, data=body, headers={"Content-Type": kind}).status_code == 415


# --- GET / -------------------------------------------------------------------------------

def test_get_root_names_only_what_kubesalt_serves(ctl):
    resp = Client(ctl).session.get(f"{ctl.api_url}/", timeout=30,
                                   headers={"Accept": "application/json"})
    assert resp.status_code == 200
    assert resp.json() == {"return": "Welcome", "clients": ["runner"]}
    code, status = ctl.status()
    assert code == 0 and status["api_running"] is True  # what `status` asks of GET /


# --- failed logins -----------------------------------------------------------------------

def _api_log(ctl):
    return (ctl.root / "var" / "log" / "salt" / "api").read_text(errors="replace")


def _logins(ctl, source, attempts):
    """Send the (user, password) attempts all at once; their status codes, in order."""
    with concurrent.futures.ThreadPoolExecutor(len(attempts)) as pool:
        return list(pool.map(lambda a: Client(ctl, source).login(*a).status_code, attempts))


def test_failed_logins_of_a_user_are_throttled(ctl):
    wrong = [f"wrong-{i}-Passw0rd" for i in range(8)]
    codes = _logins(ctl, "127.0.0.3", [(VIEWER[0], p) for p in wrong])
    # Exactly 5 are checked however they interleave: the rest were in flight beside 4 others
    # or came after the 5th failure.
    assert sorted(codes) == [401] * 5 + [429] * 3, codes
    # The right password now, and it is not even checked.
    resp = Client(ctl, "127.0.0.3").login(*VIEWER)
    assert resp.status_code == 429, resp.text
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert "too many failed logins" in resp.json()["return"]
    # per user name: from another address too
    assert Client(ctl, "127.0.0.4").login(*VIEWER).status_code == 429
    # Others, and a successful login, are not slowed.
    started = time.monotonic()
    assert Client(ctl, "127.0.0.3").login(*OPERATOR).status_code == 200
    assert time.monotonic() - started < 5
    _wait_for(lambda: "login of 'victor' from 127.0.0.4 refused" in _api_log(ctl), 30,
              "the throttled login in the API log")
    text = _api_log(ctl)
    assert text.count("failed login of 'victor' from 127.0.0.3") == 5
    for password in (*wrong, VIEWER[1]):
        assert password not in text


def test_failed_logins_from_an_address_are_throttled(ctl):
    # 4 each for 6 names: no name reaches its own limit
    codes = _logins(ctl, "127.0.0.5", [(f"nobody{i % 6}", "x") for i in range(24)])
    assert sorted(codes) == [401] * 20 + [429] * 4, codes
    resp = Client(ctl, "127.0.0.5").login(*OPERATOR)
    assert resp.status_code == 429, resp.text
    assert int(resp.headers["Retry-After"]) >= 1
    assert Client(ctl, "127.0.0.6").login(*OPERATOR).status_code == 200


# --- idle connections --------------------------------------------------------------------

def _connect_silently(ctl, count):
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex((ctl.interface, ctl.api_port))
        socks.append(sock)
    pending = list(socks)
    deadline = time.monotonic() + 20
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} connections not established"
        _, writable, _ = select.select([], pending, [], 1)
        pending = [s for s in pending if s not in writable]
    for sock in socks:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    return socks


def test_idle_connections_do_not_stop_the_api(ctl):
    silent = _connect_silently(ctl, 200)  # TCP only, not even a TLS hello
    handshaken = []
    try:
        for _ in range(120):  # more than the worker threads: TLS done, then no request
            handshaken.append(_tls(ctl))
        started = time.monotonic()
        resp = Client(ctl).login(*OPERATOR, timeout=10)
        elapsed = time.monotonic() - started
        assert resp.status_code == 200, resp.text
        assert elapsed < 2, f"login took {elapsed:.1f}s with idle connections held"
    finally:
        for sock in silent + handshaken:
            sock.close()
    assert Client(ctl).login(*OPERATOR).status_code == 200
