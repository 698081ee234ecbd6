"""Every way conjurer's exchange with the controller can fail ends in one line that names the
fix: against the controller's real HTTPS endpoint (master/endpoint.py) on loopback, with a
throwaway CA and credentials issued by the real `cluster.installer`."""

import copy
import hashlib
import http.server
import json
import platform
import re
import socket
import ssl
import sys
import threading
import types

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.inventory import clusters
from kubesalt.master.endpoint import server as endpoint
from kubesalt.master.trust import pki
from kubesalt.master.inventory.store import Store
from kubesalt.minion_bootstrap import agent as agent_mod
from kubesalt.minion_bootstrap import cli, credentials, prechecks
from tests.serving import serve_in_background

SETTINGS = {"advertise": "127.0.0.1", "publish_port": 4505, "ret_port": 4506,
            "https_port": 4507}
VERSION = "%d.%d" % sys.version_info[:2]
TAG = "cp%d%d" % sys.version_info[:2]
ARCH = platform.machine()
NODE = types.SimpleNamespace(name="node-abcd1234-127-0-0-1-edge1",
                             hostname="node-abcd1234-127-0-0-1-edge1")


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    """Credentials exactly as cluster.installer issues them, for a controller on loopback."""
    base = tmp_path_factory.mktemp("controller")
    store = Store(base / "state")
    clusters.create(store, "edge1")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    master_pub = base / "master.pub"
    master_pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def issue(settings, dest):
        result = clusters.installer(store, settings, base / "pki", master_pub, "edge1",
                                    str(base / dest))
        with open(result["creds_file"]) as pem, open(result["passphrase_file"]) as phrase:
            return credentials.open_credentials(pem.read(), phrase.read(), "edge1")

    return types.SimpleNamespace(ca=pki.ensure_ca(base / "pki"), issue=issue, base=base,
                                 creds=issue(SETTINGS, "out"))


def creds_for(issued, port, address="127.0.0.1"):
    creds = copy.copy(issued.creds)
    creds.controller = dict(issued.creds.controller, address=address, https_port=port)
    return creds


def _cert_files(ca, directory, ips=("127.0.0.1",)):
    cert, key = ca.issue_server_cert([], list(ips), 10)
    (directory / "s.crt").write_text(cert)
    (directory / "s.key").write_text(key)
    return directory / "s.crt", directory / "s.key"


class Controller:
    """The controller's endpoint on loopback: artifacts under `artifacts`, and the answers
    its enrollment and check calls give."""

    def __init__(self, ca, directory):
        self.artifacts = directory / "artifacts"
        (self.artifacts / "agent").mkdir(parents=True)
        self.check_answer = (200, {"ok": True, "cluster": "edge1"})
        self.enroll_answer = (200, {"status": "DISCOVERED"})
        self.checked = []
        cert, key = _cert_files(ca, directory)
        self.server = endpoint.EndpointServer(
            ("127.0.0.1", 0), self.artifacts, cert, key,
            enroll=lambda payload, address: self.enroll_answer,
            check=lambda payload, address: self.checked.append(payload) or self.check_answer)
        self.port = self.server.server_address[1]
        serve_in_background(self.server)

    def publish(self, bundles, files=()):
        for name, data in files:
            (self.artifacts / "agent" / name).write_bytes(data)
        (self.artifacts / "agent" / "manifest.json").write_text(
            json.dumps({"format": 1, "bundles": bundles}))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def controller(issued, tmp_path):
    ctl = Controller(issued.ca, tmp_path)
    yield ctl
    ctl.close()


def _args(**kwargs):
    return types.SimpleNamespace(**dict(dict(agent_bundle=None, preflight_report=False,
                                             multi_minion=False), **kwargs))


def _one_line_failure(error):
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    return text


# ---- what the credentials carry --------------------------------------------------------------

def test_credentials_name_an_ntp_server_only_when_one_was_configured(issued):
    assert "ntp_server" not in issued.creds.controller
    ctx = cli.check_context(_args(), issued.creds, NODE)
    assert ctx.ntp_server is None and ctx.ca_cert_pem == issued.creds.ca_cert_pem
    configured = issued.issue(dict(SETTINGS, ntp_server="10.77.0.2"), "with-ntp")
    assert configured.controller["ntp_server"] == "10.77.0.2"
    assert cli.check_context(_args(), configured, NODE).ntp_server == "10.77.0.2"


# ---- the node-agent software ---------------------------------------------------------------

def test_no_manifest_yet_says_to_build_the_bundle(issued, controller, tmp_path):
    with pytest.raises(cli.ControllerError) as exc:
        cli.fetch_bundle(creds_for(issued, controller.port), _args(), str(tmp_path))
    text = _one_line_failure(exc.value)
    assert f"the controller at 127.0.0.1:{controller.port} has no node-agent software yet" \
        in text
    assert "run `kubesalt-controller agent-bundle` on the controller" in text
    assert "`kubesalt-controller start`, which builds it" in text
    assert "404" not in text


def test_no_bundle_for_this_python_names_both_sides_and_the_command(issued, controller,
                                                                    tmp_path):
    controller.publish([{"python": "cp27", "arch": ARCH, "file": "a.tar.gz", "sha256": "0"},
                        {"python": TAG, "arch": "s390x", "file": "b.tar.gz", "sha256": "0"}])
    with pytest.raises(agent_mod.AgentError) as exc:
        cli.fetch_bundle(creds_for(issued, controller.port), _args(), str(tmp_path))
    text = _one_line_failure(exc.value)
    assert f"this node: Python {VERSION} ({TAG}) on {ARCH}" in text
    assert f"it has: Python 2.7 on {ARCH}, Python {VERSION} on s390x. Build" in text
    assert f"`kubesalt-controller agent-bundle --python {VERSION}`" in text
    assert "python2.7 ./conjurer" in text


def test_no_bundle_for_this_architecture(issued, controller, tmp_path):
    controller.publish([{"python": TAG, "arch": "s390x", "file": "b.tar.gz", "sha256": "0"}])
    with pytest.raises(agent_mod.AgentError) as exc:
        cli.fetch_bundle(creds_for(issued, controller.port), _args(), str(tmp_path))
    assert f"it has: Python {VERSION} on s390x (none for {ARCH}). Build one" in str(exc.value)


def test_an_empty_manifest_says_none(issued, controller, tmp_path):
    controller.publish([])
    with pytest.raises(agent_mod.AgentError, match="it has: none. Build one"):
        cli.fetch_bundle(creds_for(issued, controller.port), _args(), str(tmp_path))


def test_a_listed_bundle_missing_from_the_store(issued, controller, tmp_path):
    controller.publish([{"python": TAG, "arch": ARCH, "file": "gone.tar.gz", "sha256": "0"}])
    with pytest.raises(cli.ControllerError) as exc:
        cli.fetch_bundle(creds_for(issued, controller.port), _args(), str(tmp_path))
    text = _one_line_failure(exc.value)
    assert "lists gone.tar.gz but the controller does not have that file" in text
    assert f"kubesalt-controller agent-bundle --python {VERSION}" in text


def test_the_bundle_is_fetched_when_it_is_there(issued, controller, tmp_path):
    data = b"wheels"
    controller.publish([{"python": TAG, "arch": ARCH, "file": "ok.tar.gz",
                         "sha256": hashlib.sha256(data).hexdigest()}], [("ok.tar.gz", data)])
    path, sha256 = cli.fetch_bundle(creds_for(issued, controller.port), _args(), str(tmp_path))
    assert open(path, "rb").read() == data and sha256 == hashlib.sha256(data).hexdigest()


def test_a_local_bundle_without_its_manifest(issued, tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"x")
    with pytest.raises(agent_mod.AgentError, match="needs the controller's manifest.json"):
        cli.fetch_bundle(issued.creds, _args(agent_bundle=str(tmp_path / "x.tar.gz")),
                         str(tmp_path))


# ---- refusals: the credentials -----------------------------------------------------------------

class _Refusing(http.server.HTTPServer):
    """What a controller (or something in front of it) refusing every GET looks like."""

    def __init__(self, ca, directory, code):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = json.dumps({"error": "installer credentials required"}).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*_cert_files(ca, directory))
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.shutdown()
        self.server_close()


@pytest.mark.parametrize("code", [401, 403])
def test_a_refused_download_names_the_credentials(issued, tmp_path, code):
    server = _Refusing(issued.ca, tmp_path, code)
    try:
        with pytest.raises(cli.ControllerError) as exc:
            cli.fetch_bundle(creds_for(issued, server.server_port), _args(), str(tmp_path))
    finally:
        server.close()
    text = _one_line_failure(exc.value)
    assert f"the controller refused these credentials (HTTP {code}" in text
    assert "revoked or replaced, have expired, or belong to another cluster" in text
    assert "salt-run cluster.installer edge1" in text


@pytest.mark.parametrize("answer,expected", [
    ((403, {"error": "these installer credentials were revoked or replaced; download new ones "
                     "with salt-run cluster.installer edge1", "reason": "revoked"}),
     "these installer credentials were revoked or replaced; download new ones with salt-run "
     "cluster.installer edge1"),
    ((403, {"error": "the installer certificate was not issued by this controller",
            "reason": "untrusted"}),
     "the installer certificate was not issued by this controller; download new credentials "
     "on the controller with salt-run cluster.installer edge1"),
    ((403, {"error": "these installer credentials are not for cluster edge1",
            "reason": "wrong-cluster"}), "cluster.installer edge1"),
    ((401, {}), "HTTP 401; download new credentials on the controller with salt-run "
                "cluster.installer edge1"),
    ((403, {"error": "the node's clock is more than 10 minutes off the controller's; fix its "
                     "time (NTP) and retry", "reason": "clock"}),
     "the node's clock is more than 10 minutes off the controller's; fix its time (NTP) and "
     "retry"),
])
def test_refused_check_says_what_to_do(issued, controller, answer, expected, monkeypatch,
                                       capsys):
    controller.check_answer = answer
    with pytest.raises(cli.EnrollError) as exc:
        cli.check_installer(creds_for(issued, controller.port), NODE.name)
    assert expected in _one_line_failure(exc.value)
    if answer[1].get("reason") == "clock":
        assert "cluster.installer" not in str(exc.value)
    # and through install: exit 5, one line, nothing changed
    monkeypatch.setattr(prechecks, "run", lambda ctx: [])
    node_agent = FakeAgent()
    code = cli.install(_args(), creds_for(issued, controller.port), NODE, node_agent)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_ENROLL
    assert len(err) == 1 and err[0].startswith("[-] the controller refused these credentials: ")
    assert err[0].endswith("nothing on this node was changed")
    assert node_agent.calls == []


def test_refused_enrollment_says_what_to_do(issued, controller):
    controller.enroll_answer = (403, {"error": "the enrollment signature does not verify; the "
                                               "credentials are damaged",
                                      "reason": "bad-signature"})
    with pytest.raises(cli.EnrollError, match="damaged; download new credentials on the "
                                              "controller with salt-run cluster.installer "
                                              "edge1"):
        cli.enroll(creds_for(issued, controller.port), NODE.name, "PUB")


# ---- the network and TLS ---------------------------------------------------------------------

@pytest.fixture
def closed_port():
    """A port nothing listens on, held so nothing else takes it during the test."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def silent_port():
    """A port that takes connections but never answers, like a black-holing middlebox."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def test_connection_refused_names_address_port_and_what_to_check(issued, closed_port,
                                                                 tmp_path):
    with pytest.raises(cli.ControllerError) as exc:
        cli.fetch_bundle(creds_for(issued, closed_port), _args(), str(tmp_path))
    text = _one_line_failure(exc.value)
    assert f"the controller at 127.0.0.1:{closed_port} refused the connection" in text
    assert "kubesalt-controller status" in text and "--https-port" in text
    assert f"firewalls allow TCP 127.0.0.1:{closed_port}" in text


def test_no_answer_names_the_wait_and_the_firewall(issued, silent_port):
    with pytest.raises(cli.ControllerError) as exc:
        cli._https_get(creds_for(issued, silent_port), cli.MANIFEST_PATH, timeout=0.5)
    text = _one_line_failure(exc.value)
    assert f"no answer from the controller at 127.0.0.1:{silent_port} within 0.5 s" in text
    assert "firewall" in text


def test_unresolvable_name(issued, tmp_path):
    with pytest.raises(cli.ControllerError) as exc:
        cli.fetch_bundle(creds_for(issued, 4507, address="controller.invalid"), _args(),
                         str(tmp_path))
    text = _one_line_failure(exc.value)
    assert "the controller's name controller.invalid does not resolve" in text
    assert "/etc/hosts" in text


def test_a_certificate_from_another_ca_is_a_tls_interception(issued, tmp_path):
    stranger = Controller(pki.ensure_ca(tmp_path / "stranger"), tmp_path)
    try:
        with pytest.raises(cli.ControllerError) as exc:
            cli.fetch_bundle(creds_for(issued, stranger.port), _args(), str(tmp_path))
    finally:
        stranger.close()
    text = _one_line_failure(exc.value)
    assert f"the certificate at 127.0.0.1:{stranger.port} does not match the controller CA " \
           "in the credentials" in text
    assert "proxy intercepts TLS" in text


def test_a_certificate_for_another_address(issued, tmp_path):
    server = _Refusing(issued.ca, tmp_path, 404)
    # the same kind of server, reached by a name its certificate does not carry
    try:
        with pytest.raises(cli.ControllerError) as exc:
            cli.fetch_bundle(creds_for(issued, server.server_port, address="localhost"),
                             _args(), str(tmp_path))
    finally:
        server.close()
    text = _one_line_failure(exc.value)
    assert re.search(r"the certificate at localhost:\d+ is not issued for localhost", text)
    assert "--advertise" in text


def test_install_failures_are_one_line_and_change_nothing(issued, controller, monkeypatch,
                                                          capsys):
    monkeypatch.setattr(prechecks, "run", lambda ctx: [])
    node_agent = FakeAgent()
    code = cli.install(_args(), creds_for(issued, controller.port), NODE, node_agent)
    out, err = capsys.readouterr()
    assert code == cli.EXIT_INSTALL
    assert out.splitlines()[-1] == "[+] Step 1. Installing node-agent"
    [line] = err.strip().splitlines()
    assert line.startswith("[-] install failed: the controller at 127.0.0.1:")
    assert "kubesalt-controller agent-bundle" in line
    assert line.endswith("nothing on this node was changed")
    assert node_agent.calls == []


def test_unreachable_at_check_time_is_not_called_a_refusal(issued, closed_port, monkeypatch,
                                                           capsys):
    monkeypatch.setattr(prechecks, "run", lambda ctx: [])
    code = cli.install(_args(), creds_for(issued, closed_port), NODE, FakeAgent())
    [line] = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_ENROLL
    assert line.startswith("[-] cannot ask the controller whether these credentials may "
                           f"enroll: the controller at 127.0.0.1:{closed_port} refused the "
                           "connection")


class FakeAgent:
    """Records every call that would change the node; reading what is there changes nothing."""

    def __init__(self):
        self.calls = []

    def held_public_key(self):
        return None

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append(name)
            return "PUB" if name == "generate_keys" else None
        return call


# ---- what the controller's check says about this node, before anything changes -------------

ID_IN_USE = (409, {"error": f"a key with the id {NODE.name} is already pending on the controller "
                            "and it is not this node's: another salt-minion uses this id",
                   "reason": "id-in-use"})


@pytest.fixture
def node_root(tmp_path, monkeypatch):
    """A node's file system as conjurer finds it, with the prechecks that look at this machine
    and the network left out (test_prechecks has them); the OS check stays."""
    root = tmp_path / "node"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("edge-7\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tedge-7\n")
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    monkeypatch.setattr(cli, "ROOT", str(root))
    monkeypatch.setattr(prechecks, "CHECKS", (prechecks.check_os,))
    return root


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


def _recording_agent(root):
    ran = []
    node_agent = agent_mod.Agent(root=str(root), run=lambda argv, **kw: ran.append(argv))
    return node_agent, ran


@pytest.mark.parametrize("answer,exit_code,words", [
    (ID_IN_USE, cli.EXIT_ENROLL,
     f"[-] the controller refused this node: a key with the id {NODE.name} is already pending "
     "on the controller"),
    ((200, {"ok": True, "cluster": "edge1", "os": "ubuntu-22.04"}), cli.EXIT_PRECHECK,
     "[os] this node runs debian 12 (debian-12) but cluster edge1 is for ubuntu-22.04"),
])
def test_a_refused_id_or_another_os_changes_nothing(issued, controller, node_root, capsys,
                                                    answer, exit_code, words):
    controller.check_answer = answer
    before = _tree(node_root)
    node_agent, ran = _recording_agent(node_root)
    code = cli.install(_args(), creds_for(issued, controller.port), NODE, node_agent)
    out, err = capsys.readouterr()
    assert code == exit_code, out + err
    assert words in err
    assert err.strip().splitlines()[-1].endswith("nothing on this node was changed")
    assert (_tree(node_root), ran) == (before, [])
    # a fresh node holds no key, and says so: any key under its id is another minion's
    [payload] = controller.checked
    assert payload["request"]["held_pub_sha256"] is None and "minion_pub" not in payload


def test_a_rerun_names_the_key_it_holds(issued, controller, node_root):
    pub = node_root / "opt/kubesalt/salt/etc/salt/pki/minion/minion.pub"
    pub.parent.mkdir(parents=True)
    pub.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    node_agent, _ = _recording_agent(node_root)
    answer, refused = cli.ask_controller(creds_for(issued, controller.port), NODE, node_agent)
    assert (answer, refused) == ({"ok": True, "cluster": "edge1"}, None)
    [payload] = controller.checked
    assert payload["minion_pub"] == pub.read_text()
    assert payload["request"]["held_pub_sha256"] == hashlib.sha256(
        pub.read_text().strip().encode()).hexdigest()


@pytest.mark.parametrize("answer,row", [
    ((200, {"ok": True, "cluster": "edge1", "os": "ubuntu-22.04"}),
     ("os", "FAIL", "this node runs debian 12 (debian-12) but cluster edge1 is for "
                    "ubuntu-22.04 (fix: enroll a node that runs ubuntu-22.04 in edge1")),
    (ID_IN_USE, ("enrollment", "FAIL", "the controller refused this node: a key with the id ")),
])
def test_precheck_asks_the_controller_too(issued, controller, node_root, capsys, monkeypatch,
                                         answer, row):
    issued.issue(dict(SETTINGS, https_port=controller.port), "precheck")
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)  # conjurer's own check; as on a node
    controller.check_answer = answer
    before = _tree(node_root)
    code = cli.main(["-edge-name=edge1", f"-creds-file={issued.base}/precheck/edge1.pem",
                     f"-passphrase-file={issued.base}/precheck/edge1-passphrase.txt",
                     "-precheck"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_PRECHECK, out
    assert any(line.split(maxsplit=2)[:2] == list(row[:2]) and line.split(maxsplit=2)[2]
               .startswith(row[2]) for line in out.splitlines()), out
    assert _tree(node_root) == before
