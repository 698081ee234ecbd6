"""The controller's PKI: its CA, the HTTPS endpoint certificate, installer certificates, and
the check of a node's enrollment proof.

CA key: EC P-256. Nodes never verify anything with it in Python, only through the `ssl`
module, which handles EC everywhere we run (OpenSSL >= 1.0.2); P-256 gives ~128-bit security
like RSA-3072 at a fraction of the key and signature size, and its key is made instantly, so
`ensure_ca` in tests and on first init costs nothing.

Installer keys: RSA-2048, because the node signs with them in pure Python
(minion_bootstrap/credentials.py), where PKCS#1 v1.5 is a modular exponentiation.

The cluster an installer certificate is for is a SAN URI `kubesalt://cluster/<name>`: a typed
field that is either present exactly once or not, rather than a convention inside the subject
O that other tooling displays and may rewrite.
"""

import base64
import datetime
import fcntl
import hashlib
import io
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubesalt.minion_bootstrap.credentials import canonical_json

CA_VALIDITY_DAYS = 3650
INSTALLER_CN = "kubesalt-installer"
CLUSTER_URI_PREFIX = "kubesalt://cluster/"
# Certificates are valid a little before they are issued so a node or controller whose clock
# is slightly behind does not see a fresh certificate as not yet valid.
BACKDATE = datetime.timedelta(minutes=5)

UTC = datetime.UTC


def _now(now):
    if now is None:
        return datetime.datetime.now(UTC)
    if isinstance(now, datetime.datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.astimezone(UTC)
    return datetime.datetime.fromtimestamp(float(now), UTC)


def _serial():
    # 128 random bits (RFC 5280 allows up to 20 octets; zero is not a valid serial).
    return secrets.randbits(128) or 1


def _check_ttl(ttl_days, name):
    if isinstance(ttl_days, bool) or not isinstance(ttl_days, (int, float)) or ttl_days <= 0:
        raise ValueError(f"{name} must be a positive number of days, got {ttl_days!r}")


def _write_private(path, data):
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_public(path, data):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@dataclass
class Installer:
    cluster: str
    serial: str
    not_after: datetime.datetime
    cert_pem: str
    private_numbers: dict = field(repr=False)


class CA:
    """The controller CA, loaded from `ca.crt` / `ca.key`."""

    def __init__(self, cert, key, directory=None):
        self.cert = cert
        self._key = key
        self.directory = directory
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()

    def __repr__(self):
        return f"<CA {self.cert.subject.rfc4514_string()}>"

    def _builder(self, subject, public_key, not_before, not_after):
        return (x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(self.cert.subject)
                .public_key(public_key)
                .serial_number(_serial())
                .not_valid_before(not_before)
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self._key.public_key()), critical=False))

    def issue_server_cert(self, names, ips, ttl_days, now=None):
        """(cert_pem, key_pem) for the controller's HTTPS endpoint; nodes check the name or
        address they connect to against these SANs."""
        _check_ttl(ttl_days, "ttl_days")
        names = [str(n) for n in names or () if n]
        addresses = [ipaddress.ip_address(str(ip)) for ip in ips or () if ip]
        if not names and not addresses:
            raise ValueError("the endpoint certificate needs at least one name or address")
        moment = _now(now)
        key = ec.generate_private_key(ec.SECP256R1())
        common = names[0] if names else str(addresses[0])
        sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(a) for a in addresses]
        cert = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common[:64])]),
                              key.public_key(), moment - BACKDATE,
                              moment + datetime.timedelta(days=ttl_days))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(_key_usage(digital_signature=True), critical=True)
                .sign(self._key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _key_usage(digital_signature=False, cert_sign=False):
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)


def ensure_ca(pki_dir):
    """Load the controller CA from `pki_dir`, creating it the first time. Never replaces an
    existing CA: every installer and endpoint certificate chains to it."""
    pki_dir = Path(pki_dir)
    pki_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pki_dir, 0o700)
    cert_path, key_path = pki_dir / "ca.crt", pki_dir / "ca.key"
    # Controller init and a runner may both get here first; one creates, the other loads.
    with open(pki_dir / ".ca.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cert_path.exists() != key_path.exists():
            present, absent = (cert_path, key_path) if cert_path.exists() else \
                (key_path, cert_path)
            raise RuntimeError(f"{present} exists but {absent} does not; restore it from a "
                               "backup (a new CA would invalidate every issued credential)")
        if not cert_path.exists():
            _create_ca(cert_path, key_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if key.public_key().public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo):
        raise RuntimeError(f"{key_path} does not belong to {cert_path}")
    return CA(cert, key, pki_dir)


def _create_ca(cert_path, key_path):
    key = ec.generate_private_key(ec.SECP256R1())
    moment = datetime.datetime.now(UTC)
    # A random suffix keeps two controllers' CAs apart by name as well as by key.
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubesalt"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"kubesalt controller CA {secrets.token_hex(4)}"),
    ])
    cert = (x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_serial())
            .not_valid_before(moment - BACKDATE)
            .not_valid_after(moment + datetime.timedelta(days=CA_VALIDITY_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(digital_signature=True, cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def issue_installer(ca, cluster, ttl_days, now=None):
    """A fresh RSA-2048 installer key and its certificate for `cluster`, valid ttl_days."""
    _check_ttl(ttl_days, "installer_ttl_days")
    if not isinstance(cluster, str) or not cluster or "/" in cluster or len(cluster) > 63:
        raise ValueError(f"cluster must be a cluster name, got {cluster!r}")
    moment = _now(now)
    not_after = (moment + datetime.timedelta(days=ttl_days)).replace(microsecond=0)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubesalt"),
        x509.NameAttribute(NameOID.COMMON_NAME, INSTALLER_CN),
    ])
    cert = (ca._builder(subject, key.public_key(), moment - BACKDATE, not_after)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(CLUSTER_URI_PREFIX + cluster)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .sign(ca._key, hashes.SHA256()))
    private = key.private_numbers()
    return Installer(
        cluster=cluster,
        serial=serial_hex(cert),
        not_after=not_after,
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        private_numbers={"n": private.public_numbers.n, "e": private.public_numbers.e,
                         "d": private.d},
    )


def serial_hex(cert):
    """How serials are written everywhere (store, credentials, requests): lowercase hex."""
    return format(cert.serial_number, "032x")


def installer_cluster(cert):
    """The cluster named by an installer certificate, or None if it names none or several."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    clusters = [uri[len(CLUSTER_URI_PREFIX):]
                for uri in sans.get_values_for_type(x509.UniformResourceIdentifier)
                if uri.startswith(CLUSTER_URI_PREFIX)]
    return clusters[0] if len(clusters) == 1 else None


def _is_installer(cert):
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return (len(names) == 1 and names[0].value == INSTALLER_CN and not constraints.ca
            and isinstance(cert.public_key(), rsa.RSAPublicKey))


def verify_enrollment(ca_cert_pem, installer_cert_pem, request, signature, now, valid_serials):
    """(ok, reason): does `signature` prove possession of a valid installer key for
    request["cluster"]?

    Checked in this order: "untrusted" (not an installer certificate issued by this CA, or the
    request names another serial than the certificate), "expired" (outside its validity),
    "wrong-cluster", "revoked" (serial not in valid_serials), "bad-signature". The cluster is
    checked before revocation so another cluster's installer is reported as such rather than
    as revoked (its serial is never in this cluster's valid set).
    """
    try:
        ca = x509.load_pem_x509_certificate(_bytes(ca_cert_pem))
        cert = x509.load_pem_x509_certificate(_bytes(installer_cert_pem))
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False, "untrusted"
    if not _is_installer(cert) or not isinstance(request, dict):
        return False, "untrusted"
    serial = serial_hex(cert)
    if str(request.get("serial", "")).lower() != serial:
        return False, "untrusted"
    moment = _now(now)
    if moment < cert.not_valid_before_utc:
        return False, "untrusted"
    if moment >= cert.not_valid_after_utc:
        return False, "expired"
    if installer_cluster(cert) is None or installer_cluster(cert) != request.get("cluster"):
        return False, "wrong-cluster"
    if serial not in {str(s).lower() for s in valid_serials}:
        return False, "revoked"
    try:
        if isinstance(signature, str):
            signature = base64.b64decode(signature, validate=True)
        cert.public_key().verify(signature, canonical_json(request), padding.PKCS1v15(),
                                 hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False, "bad-signature"
    return True, "ok"


def _bytes(text):
    return text.encode() if isinstance(text, str) else bytes(text)


def master_fingerprint(master_pub_path, hash_type="sha256"):
    """The master key's fingerprint exactly as Salt's `master_finger` expects it
    (salt.utils.crypt.pem_finger): the hash of the PEM body lines (blank lines, header and
    footer dropped, newlines kept), as colon-separated hex pairs."""
    if hash_type not in hashlib.algorithms_guaranteed:
        raise ValueError(f"hash_type must be one of {sorted(hashlib.algorithms_guaranteed)}")
    path = Path(master_pub_path)
    # Split exactly as Salt's readlines() does, so odd line endings hash the same.
    lines = [line for line in io.BytesIO(path.read_bytes()).readlines() if line.strip()]
    if len(lines) < 3 or not lines[0].startswith(b"-----BEGIN"):
        raise ValueError(f"{path} is not a PEM public key")
    body = b"".join(lines[1:-1]).replace(b"\r\n", b"\n")
    digest = hashlib.new(hash_type, body).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
