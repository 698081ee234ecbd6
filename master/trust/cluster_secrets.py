"""Each cluster's secrets, made and kept by the controller: the Kubernetes CA, the etcd CA and
its members' certificates, the kubeadm bootstrap token and the certificate key.

The controller makes them so that nothing secret ever travels back from a node in a job
return: the first master gets the CA through its own pillar (kubeadm uses an existing CA in
/etc/kubernetes/pki), and joining nodes get the token and the CA hash the controller already
knows. Files are 0600 under <state_dir>/clusters/<name>/.
"""

import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import string
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
MEMBER_DAYS = 365
_TOKEN_CHARS = string.ascii_lowercase + string.digits


def cluster_dir(layout, cluster):
    return Path(layout.state_dir) / "clusters" / cluster


def _write_secret(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _now():
    return datetime.datetime.now(datetime.UTC)


def _make_ca(common_name):
    # RSA, kubeadm's default for its CAs: every tool in the ecosystem accepts it.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, key_encipherment=True,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return _cert_pem(cert), _key_pem(key)


def ca_cert_hash(ca_cert_pem):
    """kubeadm's --discovery-token-ca-cert-hash: sha256 of the CA's SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _new_token():
    pick = lambda n: "".join(secrets.choice(_TOKEN_CHARS) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def ensure(layout, cluster):
    """Create whatever of the cluster's secrets does not exist yet; return them all."""
    directory = cluster_dir(layout, cluster)
    stored = directory / "secrets.json"
    if stored.exists():
        data = json.loads(stored.read_text())
    else:
        data = {}
    changed = False
    for prefix, common_name in (("kubernetes", "kubernetes"), ("etcd", "etcd-ca")):
        if f"{prefix}_ca_cert" not in data:
            data[f"{prefix}_ca_cert"], data[f"{prefix}_ca_key"] = _make_ca(common_name)
            changed = True
    if "token" not in data:
        data["token"] = _new_token()
        changed = True
    if "certificate_key" not in data:
        data["certificate_key"] = secrets.token_hex(32)
        changed = True
    if changed:
        _write_secret(stored, json.dumps(data, indent=2, sort_keys=True))
    data["ca_cert_hash"] = ca_cert_hash(data["kubernetes_ca_cert"])
    return data


def load(layout, cluster):
    stored = cluster_dir(layout, cluster) / "secrets.json"
    if not stored.exists():
        return None
    data = json.loads(stored.read_text())
    data["ca_cert_hash"] = ca_cert_hash(data["kubernetes_ca_cert"])
    return data


def etcd_member_cert(secrets_data, member_name, address):
    """A server+peer certificate for one etcd member, signed by the cluster's etcd CA."""
    ca_cert = x509.load_pem_x509_certificate(secrets_data["etcd_ca_cert"].encode())
    ca_key = serialization.load_pem_private_key(secrets_data["etcd_ca_key"].encode(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(member_name), x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if address:
        sans.append(x509.IPAddress(ipaddress.ip_address(address)))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=MEMBER_DAYS))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _cert_pem(cert), _key_pem(key)


def etcd_member(layout, cluster, member_name, address):
    """The member's (certificate, key) as issued for `address`, or None when none was issued
    for that address yet. Reads only: a pillar render calls it."""
    path = cluster_dir(layout, cluster) / "etcd-members" / f"{member_name}.json"
    if path.exists():
        data = json.loads(path.read_text())
        if data.get("address") == address:
            return data["cert"], data["key"]
    return None


def ensure_etcd_member(layout, cluster, member_name, address):
    """The member's certificate, issued once and reused, so applying the etcd state again
    changes nothing; reissued only when the member's address changes."""
    issued = etcd_member(layout, cluster, member_name, address)
    if issued is not None:
        return issued
    path = cluster_dir(layout, cluster) / "etcd-members" / f"{member_name}.json"
    secrets_data = load(layout, cluster)
    if secrets_data is None:
        return None, None
    cert, key = etcd_member_cert(secrets_data, member_name, address)
    _write_secret(path, json.dumps({"address": address, "cert": cert, "key": key}))
    return cert, key


def forget_etcd_member(layout, cluster, member_name):
    """Drop a removed member's certificate: a node that comes back gets a new one."""
    (cluster_dir(layout, cluster) / "etcd-members" / f"{member_name}.json").unlink(
        missing_ok=True)


def forget(layout, cluster):
    """Drop every secret of the cluster (after a reset): its next provisioning makes a new
    Kubernetes cluster, with new CAs and a new join token."""
    shutil.rmtree(cluster_dir(layout, cluster), ignore_errors=True)
