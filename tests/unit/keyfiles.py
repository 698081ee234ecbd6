"""Salt key files for unit tests that read a master's key store (master/inventory/keys.py)."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def public_key():
    """A fresh RSA public key in PEM, as a minion's key file holds it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def put_key(layout, key_dir, node_id, pub):
    """Place `pub` as `node_id`'s key under the key store's `key_dir` (minions, minions_pre,
    minions_rejected...)."""
    (layout.pki_dir / key_dir).mkdir(parents=True, exist_ok=True)
    (layout.pki_dir / key_dir / node_id).write_bytes(pub)
