"""Installer credentials: sealed on the controller with the real PKI, opened as a node would."""

import base64
import datetime
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kubesalt.master.trust import pki
from kubesalt.minion_bootstrap import credentials as creds

REPO = Path(__file__).resolve().parents[2]
CREDENTIALS_PY = REPO / "minion_bootstrap" / "credentials.py"
NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
CONTROLLER = {"address": "10.77.0.1", "publish_port": 4505, "ret_port": 4506,
              "https_port": 4507, "master_finger": "ab:cd:ef"}


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    ca = pki.ensure_ca(tmp_path_factory.mktemp("pki"))
    installer = pki.issue_installer(ca, "edge1", 30, now=NOW)
    passphrase = creds.generate_passphrase()
    text = creds.seal("edge1", CONTROLLER, ca.cert_pem, installer.cert_pem, installer.serial,
                      installer.not_after, installer.private_numbers, passphrase)
    return {"ca": ca, "installer": installer, "passphrase": passphrase, "text": text}


def _open(issued, text=None, passphrase=None, edge="edge1", now=NOW):
    return creds.open_credentials(text if text is not None else issued["text"],
                                  passphrase if passphrase is not None else issued["passphrase"],
                                  edge, now=now)


def _record(text):
    body = re.search(r"-----BEGIN KUBESALT INSTALLER-----(.*?)-----END", text, re.DOTALL)[1]
    return json.loads(base64.b64decode("".join(body.split())))


def _with_record(text, record):
    armoured = creds._armour(creds.SECTION, creds.canonical_json(record))
    start = text.index("-----BEGIN KUBESALT INSTALLER-----")
    return text[:start] + armoured


def _certs(text):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", text,
                      re.DOTALL)


def _redigest(text, record):
    """An attacker's edit: recompute the plain checksum, which needs no secret."""
    ca_pem, installer_pem = _certs(text)
    unsigned = {k: v for k, v in record.items() if k != "digest"}
    record["digest"] = creds.hashlib.sha256(
        creds._covered(unsigned, ca_pem, installer_pem)).hexdigest()
    return _with_record(text, record)


def test_round_trip(issued):
    opened = _open(issued)
    installer = issued["installer"]
    assert opened.cluster == "edge1"
    assert opened.controller == CONTROLLER
    assert opened.serial == installer.serial
    assert opened.not_after == installer.not_after
    assert opened.ca_cert_pem.strip() == issued["ca"].cert_pem.strip()
    assert opened.installer_cert_pem.strip() == installer.cert_pem.strip()
    assert str(installer.private_numbers["d"]) not in repr(opened)


def test_file_holds_no_secret_in_clear(issued):
    text = issued["text"]
    assert issued["passphrase"] not in text
    record = _record(text)
    assert set(record) == {"format", "cluster", "controller", "installer", "kdf", "check",
                           "nonce", "ciphertext", "digest", "mac"}
    assert record["kdf"]["alg"] == "pbkdf2-sha256"
    assert record["kdf"]["iterations"] >= 200000
    assert record["installer"]["not_after"] == "2030-01-31T12:00:00Z"
    for number in issued["installer"].private_numbers.values():
        if number > 65537:
            assert str(number) not in text and format(number, "x") not in text.lower()
    assert len(_certs(text)) == 2


def test_passphrase_is_long_and_fresh():
    first, second = creds.generate_passphrase(), creds.generate_passphrase()
    assert first != second
    assert len(base64.urlsafe_b64decode(first + "==")) * 8 >= 128


def test_seal_refuses_a_weak_passphrase(issued):
    installer = issued["installer"]
    with pytest.raises(ValueError, match="passphrase"):
        creds.seal("edge1", CONTROLLER, issued["ca"].cert_pem, installer.cert_pem,
                   installer.serial, installer.not_after, installer.private_numbers, "short")


def _refused(issued, error, **kwargs):
    with pytest.raises(error) as caught:
        _open(issued, **kwargs)
    message = str(caught.value)
    assert issued["passphrase"] not in message
    assert str(issued["installer"].private_numbers["d"]) not in message
    assert caught.value.exit_code == error.exit_code
    return message


def test_wrong_passphrase(issued):
    message = _refused(issued, creds.WrongPassphrase, passphrase=creds.generate_passphrase())
    assert "passphrase" in message and "passphrase.txt" in message


def test_passphrase_with_trailing_newline_still_opens(issued):
    assert _open(issued, passphrase=issued["passphrase"] + "\r\n").cluster == "edge1"


def test_one_flipped_byte_in_ciphertext_is_damage_not_a_wrong_passphrase(issued):
    record = _record(issued["text"])
    raw = bytearray(base64.b64decode(record["ciphertext"]))
    raw[10] ^= 0x01
    record["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    message = _refused(issued, creds.TamperedCredentials,
                       text=_with_record(issued["text"], record))
    assert "checksum" in message
    # even with the wrong passphrase: damage is reported first
    with pytest.raises(creds.TamperedCredentials):
        _open(issued, text=_with_record(issued["text"], record), passphrase="x" * 20)


def test_flipped_byte_in_a_certificate_is_caught(issued):
    text = issued["text"]
    ca_pem = _certs(text)[0]
    line = ca_pem.splitlines()[3]
    changed = line[:5] + ("A" if line[5] != "A" else "B") + line[6:]
    _refused(issued, creds.TamperedCredentials, text=text.replace(line, changed))


@pytest.mark.parametrize("cut", [0.2, 0.5, 0.9, 0.995])
def test_truncated_file(issued, cut):
    text = issued["text"]
    message = _refused(issued, creds.MalformedCredentials, text=text[:int(len(text) * cut)])
    assert "salt-run cluster.installer edge1" in message


@pytest.mark.parametrize("mangle", [
    lambda t: t.replace("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATX-----", 1),
    lambda t: t.replace("-----END KUBESALT INSTALLER-----",
                        "!!!\n-----END KUBESALT INSTALLER-----"),
    lambda t: "",
    lambda t: t + t,
], ids=["section-renamed", "bad-base64", "empty", "doubled"])
def test_malformed_file(issued, mangle):
    _refused(issued, creds.MalformedCredentials, text=mangle(issued["text"]))


def test_not_json_inside(issued):
    text = issued["text"]
    start = text.index("-----BEGIN KUBESALT INSTALLER-----")
    broken = text[:start] + creds._armour(creds.SECTION, b"{not json")
    message = _refused(issued, creds.MalformedCredentials, text=broken)
    assert "JSON" in message


def test_weakened_kdf_is_refused(issued):
    record = _record(issued["text"])
    record["kdf"]["iterations"] = 1000
    message = _refused(issued, creds.MalformedCredentials,
                       text=_redigest(issued["text"], record))
    assert "kdf.iterations" in message


def test_edited_cluster_with_recomputed_digest_is_caught_by_the_mac(issued):
    record = _record(issued["text"])
    record["cluster"] = "other"
    message = _refused(issued, creds.TamperedCredentials,
                       text=_redigest(issued["text"], record), edge="other")
    assert "authentication code" in message


def test_swapped_ca_with_recomputed_digest_is_caught_by_the_mac(issued, tmp_path):
    other_ca = pki.ensure_ca(tmp_path)
    text = issued["text"].replace(_certs(issued["text"])[0], other_ca.cert_pem)
    _refused(issued, creds.TamperedCredentials, text=_redigest(text, _record(text)))


def test_wrong_edge_name(issued):
    message = _refused(issued, creds.WrongCluster, edge="edge2")
    assert "'edge1'" in message and "'edge2'" in message


def test_expired(issued):
    expiry = issued["installer"].not_after
    assert _open(issued, now=expiry - datetime.timedelta(seconds=1))
    message = _refused(issued, creds.ExpiredCredentials, now=expiry)
    assert "2030-01-31T12:00:00Z" in message
    assert "download new credentials with salt-run cluster.installer edge1" in message
    _refused(issued, creds.ExpiredCredentials, now=expiry.timestamp() + 86400)


def test_wrong_passphrase_is_reported_before_wrong_cluster_and_expiry(issued):
    with pytest.raises(creds.WrongPassphrase):
        _open(issued, passphrase="y" * 20, edge="edge2", now=NOW + datetime.timedelta(days=99))


def test_each_refusal_has_its_own_exit_code():
    classes = [creds.MalformedCredentials, creds.TamperedCredentials, creds.WrongPassphrase,
               creds.WrongCluster, creds.ExpiredCredentials]
    assert all(issubclass(c, creds.CredentialsError) for c in classes)
    codes = [c.exit_code for c in classes]
    assert len(set(codes)) == len(codes) and 0 not in codes


def test_signature_matches_cryptography(issued):
    opened = _open(issued)
    n, e, d = (issued["installer"].private_numbers[k] for k in ("n", "e", "d"))
    data = b"some bytes to sign"
    signature = opened.sign(data)
    cert = x509.load_pem_x509_certificate(opened.installer_cert_pem.encode())
    cert.public_key().verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        cert.public_key().verify(signature, data + b"!", padding.PKCS1v15(), hashes.SHA256())
    # PKCS#1 v1.5 is deterministic: byte-identical to what cryptography makes with the same key
    p, q = rsa.rsa_recover_prime_factors(n, e, d)
    key = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                rsa.rsa_crt_iqmp(p, q),
                                rsa.RSAPublicNumbers(e, n)).private_key()
    assert signature == key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def test_enrollment_request_verifies_on_the_controller(issued):
    opened = _open(issued)
    minion_pub = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    request, signature = opened.enrollment_request("node-abcd-10-77-0-2-edge1", minion_pub, NOW)
    assert request == {"cluster": "edge1", "node_id": "node-abcd-10-77-0-2-edge1",
                       "minion_pub_sha256": creds.hashlib.sha256(
                           minion_pub.strip().encode()).hexdigest(),
                       "serial": issued["installer"].serial,
                       "issued_at": int(NOW.timestamp())}
    # as the controller receives it: JSON over HTTP, signature base64-decoded
    received = json.loads(json.dumps(request))
    ok = pki.verify_enrollment(issued["ca"].cert_pem, opened.installer_cert_pem, received,
                               base64.b64decode(signature), NOW, {issued["installer"].serial})
    assert ok == (True, "ok")


PROXY = {"http": "http://alice:pr0xy-s3cret@proxy.site:3128", "https": "",
         "no_proxy": "10.0.0.0/8,.site", "root_ca": ""}


def _sealed_with_proxy(issued, proxy):
    installer = issued["installer"]
    return creds.seal("edge1", CONTROLLER, issued["ca"].cert_pem, installer.cert_pem,
                      installer.serial, installer.not_after, installer.private_numbers,
                      issued["passphrase"], proxy=proxy)


def test_proxy_settings_travel_sealed(issued):
    text = _sealed_with_proxy(issued, PROXY)
    assert _open(issued, text).proxy == PROXY
    assert _open(issued).proxy is None
    # The proxy password is as secret as the key: nothing of it in the file's clear parts.
    record = json.dumps(_record(text))
    assert "pr0xy-s3cret" not in text + record and "proxy.site" not in text + record


def test_proxy_settings_must_be_text(issued):
    with pytest.raises(ValueError, match="proxy must be a mapping"):
        _sealed_with_proxy(issued, {"http": 3128})
    with pytest.raises(ValueError, match="proxy must be a mapping"):
        _sealed_with_proxy(issued, {"tls_termination": "yes"})


def test_canonical_json_is_stable():
    assert creds.canonical_json({"b": 1, "a": [1, "é"]}) == b'{"a":[1,"\\u00e9"],"b":1}'


# ---- TLS: the context trusts only the controller CA and checks the host ---------------------

class _TlsServer:
    def __init__(self, cert_pem, key_pem, tmp_path):
        (tmp_path / "s.crt").write_text(cert_pem)
        (tmp_path / "s.key").write_text(key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.sock.accept()
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError):
            pass

    def close(self):
        self.thread.join(timeout=10)
        self.sock.close()


def _handshake(context, port, host):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return tls.recv(5)


def test_ssl_context_trusts_the_controller_ca(issued, tmp_path):
    cert, key = issued["ca"].issue_server_cert(["controller.test"], ["127.0.0.1"], 10)
    server = _TlsServer(cert, key, tmp_path)
    try:
        assert _handshake(_open(issued).ssl_context(), server.port, "127.0.0.1") == b"hello"
    finally:
        server.close()


def test_ssl_context_checks_the_hostname(issued, tmp_path):
    cert, key = issued["ca"].issue_server_cert(["controller.test"], ["127.0.0.2"], 10)
    server = _TlsServer(cert, key, tmp_path)
    try:
        with pytest.raises(ssl.SSLCertVerificationError, match="(?i)mismatch|match"):
            _handshake(_open(issued).ssl_context(), server.port, "127.0.0.1")
    finally:
        server.close()


def test_ssl_context_refuses_another_ca(issued, tmp_path):
    stranger = pki.ensure_ca(tmp_path / "stranger")
    cert, key = stranger.issue_server_cert([], ["127.0.0.1"], 10)
    server = _TlsServer(cert, key, tmp_path)
    try:
        with pytest.raises(ssl.SSLCertVerificationError):
            _handshake(_open(issued).ssl_context(), server.port, "127.0.0.1")
    finally:
        server.close()


# ---- the node's interpreter: Python 3.8, standard library only ------------------------------

def _python38():
    found = shutil.which("python3.8")
    candidates = [found] if found else []
    candidates += sorted(Path("/root/.pyenv/versions").glob("3.8.*/bin/python3.8"))
    for candidate in candidates:
        try:
            out = subprocess.run([str(candidate), "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == "(3, 8)":
            return str(candidate)
    return None


_NODE_SCRIPT = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("credentials", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
args = json.load(sys.stdin)
c = mod.open_credentials(args["text"], args["passphrase"], "edge1", now=args["now"])
request, signature = c.enrollment_request("node-abcd-10-77-0-2-edge1", "PUB", args["now"])
c.ssl_context()
try:
    mod.open_credentials(args["text"], "wrong-passphrase-123", "edge1", now=args["now"])
except mod.WrongPassphrase as exc:
    refused = exc.exit_code
print(json.dumps({"request": request, "signature": signature, "refused": refused}))
"""


def test_opens_and_signs_under_python38_without_third_party_packages(issued):
    python = _python38()
    if python is None:
        pytest.skip("no python3.8 interpreter on this machine")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    out = subprocess.run(
        [python, "-I", "-S", "-c", _NODE_SCRIPT, str(CREDENTIALS_PY)],
        input=json.dumps({"text": issued["text"], "passphrase": issued["passphrase"],
                          "now": NOW.timestamp()}),
        capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["refused"] == creds.WrongPassphrase.exit_code
    assert pki.verify_enrollment(issued["ca"].cert_pem, issued["installer"].cert_pem,
                                 answer["request"], base64.b64decode(answer["signature"]), NOW,
                                 {issued["installer"].serial}) == (True, "ok")


def test_module_is_python38_syntax():
    ruff = Path(sys.executable).with_name("ruff")
    out = subprocess.run([str(ruff), "check", "--target-version", "py38", str(CREDENTIALS_PY)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
