"""The controller PKI: CA, endpoint and installer certificates, enrollment checks, master_finger."""

import base64
import datetime
import hashlib
import ipaddress
import os
import stat

import pytest
import salt.crypt
import salt.utils.crypt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubesalt.master.trust import pki
from kubesalt.minion_bootstrap import credentials as creds

NOW = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
CONTROLLER = {"address": "10.77.0.1", "publish_port": 4505, "ret_port": 4506,
              "https_port": 4507, "master_finger": "ab:cd"}
MINION_PUB = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return pki.ensure_ca(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def node(ca):
    """An installer for edge1 as a node holds it after opening its credentials."""
    installer = pki.issue_installer(ca, "edge1", 30, now=NOW)
    passphrase = creds.generate_passphrase()
    text = creds.seal("edge1", CONTROLLER, ca.cert_pem, installer.cert_pem, installer.serial,
                      installer.not_after, installer.private_numbers, passphrase,
                      iterations=creds.MIN_ITERATIONS)
    return installer, creds.open_credentials(text, passphrase, "edge1", now=NOW)


def _request(opened, now=NOW):
    return opened.enrollment_request("node-abcd-10-77-0-2-edge1", MINION_PUB, now)


def _verify(ca, installer, request, signature, now=NOW, valid=None):
    valid = {installer.serial} if valid is None else valid
    return pki.verify_enrollment(ca.cert_pem, installer.cert_pem, request,
                                 base64.b64decode(signature), now, valid)


def test_ca_is_created_once_with_a_private_key_file(tmp_path):
    first = pki.ensure_ca(tmp_path)
    key_file, cert_file = tmp_path / "ca.key", tmp_path / "ca.crt"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    before = (key_file.read_bytes(), cert_file.read_bytes())
    second = pki.ensure_ca(tmp_path)
    assert (key_file.read_bytes(), cert_file.read_bytes()) == before
    assert second.cert_pem == first.cert_pem
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=3650) <= lifetime <= datetime.timedelta(days=3651)


def test_ca_half_present_is_refused_not_replaced(tmp_path):
    pki.ensure_ca(tmp_path)
    (tmp_path / "ca.key").unlink()
    cert = (tmp_path / "ca.crt").read_bytes()
    with pytest.raises(RuntimeError, match="ca.key"):
        pki.ensure_ca(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == cert


def test_server_cert_names_and_chain(ca):
    cert_pem, key_pem = ca.issue_server_cert(["controller.test"], ["10.77.0.1"], 825, now=NOW)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    cert.verify_directly_issued_by(ca.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["controller.test"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.77.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=825)
    assert "PRIVATE KEY" in key_pem
    with pytest.raises(ValueError, match="name or address"):
        ca.issue_server_cert([], [], 10)


def test_installer_certificate(ca):
    installer = pki.issue_installer(ca, "edge1", 7, now=NOW)
    cert = x509.load_pem_x509_certificate(installer.cert_pem.encode())
    cert.verify_directly_issued_by(ca.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "kubesalt-installer"
    assert pki.installer_cluster(cert) == "edge1"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == \
        ["kubesalt://cluster/edge1"]
    assert installer.not_after == NOW + datetime.timedelta(days=7)
    assert cert.not_valid_after_utc == installer.not_after
    assert int(installer.serial, 16) == cert.serial_number and len(installer.serial) == 32
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    assert public.public_numbers().n == installer.private_numbers["n"]
    assert str(installer.private_numbers["d"]) not in repr(installer)
    assert pki.issue_installer(ca, "edge1", 7, now=NOW).serial != installer.serial


@pytest.mark.parametrize("ttl", [0, -1, None, "7"])
def test_installer_ttl_must_be_positive(ca, ttl):
    with pytest.raises(ValueError, match="installer_ttl_days"):
        pki.issue_installer(ca, "edge1", ttl, now=NOW)


def test_enrollment_verifies(ca, node):
    installer, opened = node
    request, signature = _request(opened)
    assert _verify(ca, installer, request, signature) == (True, "ok")
    # the controller's clock may be given as epoch seconds
    assert _verify(ca, installer, request, signature, now=NOW.timestamp()) == (True, "ok")


def test_revoked_serial_is_refused(ca, node):
    installer, opened = node
    request, signature = _request(opened)
    assert _verify(ca, installer, request, signature, valid=set()) == (False, "revoked")
    assert _verify(ca, installer, request, signature, valid={"00" * 16}) == (False, "revoked")


def test_expired_installer_is_refused(ca, node):
    installer, opened = node
    request, signature = _request(opened)
    late = installer.not_after + datetime.timedelta(seconds=1)
    assert _verify(ca, installer, request, signature, now=late) == (False, "expired")


def test_other_clusters_installer_is_refused(ca, node):
    _, opened = node
    other = pki.issue_installer(ca, "edge2", 30, now=NOW)
    request, _ = _request(opened)
    request = {**request, "serial": other.serial}
    signature = _sign_with(other, request)
    assert _verify(ca, other, request, signature, valid={other.serial}) == \
        (False, "wrong-cluster")
    # and the same request re-aimed at edge2 with edge2's key goes through
    request = {**request, "cluster": "edge2"}
    assert _verify(ca, other, request, _sign_with(other, request),
                   valid={other.serial}) == (True, "ok")


def _sign_with(installer, request):
    key = creds._RsaKey(**installer.private_numbers)
    return base64.b64encode(key.sign(creds.canonical_json(request))).decode()


def test_altered_request_fails_the_signature(ca, node):
    installer, opened = node
    request, signature = _request(opened)
    altered = {**request, "node_id": "node-evil-10-77-0-9-edge1"}
    assert _verify(ca, installer, altered, signature) == (False, "bad-signature")


def test_certificate_from_another_ca_is_untrusted(node, tmp_path):
    installer, opened = node
    stranger = pki.ensure_ca(tmp_path)
    request, signature = _request(opened)
    assert _verify(stranger, installer, request, signature) == (False, "untrusted")


def test_endpoint_certificate_is_not_an_installer(ca, node):
    installer, opened = node
    cert_pem, _ = ca.issue_server_cert(["controller.test"], [], 10, now=NOW)
    serial = pki.serial_hex(x509.load_pem_x509_certificate(cert_pem.encode()))
    request, _ = _request(opened)
    request = {**request, "serial": serial}
    assert pki.verify_enrollment(ca.cert_pem, cert_pem, request, b"sig", NOW,
                                 {installer.serial, serial}) == (False, "untrusted")


def test_request_naming_another_serial_is_untrusted(ca, node):
    installer, opened = node
    request, _ = _request(opened)
    request = {**request, "serial": "11" * 16}
    assert _verify(ca, installer, request, _sign_with(installer, request),
                   valid={installer.serial, "11" * 16}) == (False, "untrusted")


def test_garbage_certificate_is_untrusted(ca, node):
    installer, opened = node
    request, signature = _request(opened)
    assert pki.verify_enrollment(ca.cert_pem, "not a cert", request, b"sig", NOW,
                                 {installer.serial}) == (False, "untrusted")


@pytest.fixture(scope="module")
def master_pub(tmp_path_factory):
    directory = tmp_path_factory.mktemp("masterkeys")
    salt.crypt.write_keys(str(directory), "master", 2048)
    return directory / "master.pub"


@pytest.mark.parametrize("hash_type", ["sha256", "sha512", "md5"])
def test_master_fingerprint_equals_salts(master_pub, hash_type):
    ours = pki.master_fingerprint(master_pub, hash_type)
    assert ours == salt.utils.crypt.pem_finger(str(master_pub), sum_type=hash_type)
    assert len(ours.split(":")) == hashlib.new(hash_type).digest_size


def test_master_fingerprint_ignores_crlf_and_blank_lines_like_salt(master_pub, tmp_path):
    odd = tmp_path / "odd.pub"
    odd.write_bytes(b"\n" + master_pub.read_bytes().replace(b"\n", b"\r\n") + b"\n\n")
    assert pki.master_fingerprint(odd) == salt.utils.crypt.pem_finger(str(odd)) == \
        pki.master_fingerprint(master_pub)


def test_master_fingerprint_of_a_non_key(tmp_path):
    (tmp_path / "x").write_text("hello\n")
    with pytest.raises(ValueError, match="not a PEM"):
        pki.master_fingerprint(tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        pki.master_fingerprint(tmp_path / "missing")
