"""Salt's key store read as kubesalt's approval record.

pending (minions_pre) = DISCOVERED, accepted (minions) = APPROVED, rejected = REJECTED. Keys are
compared by the SHA-256 of their SubjectPublicKeyInfo, so formatting differences in the PEM
text never matter.
"""

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization

STATES = {"minions_pre": "pending", "minions": "accepted", "minions_rejected": "rejected",
          "minions_denied": "denied"}


def spki_sha256(pub_pem):
    key = serialization.load_pem_public_key(pub_pem.encode() if isinstance(pub_pem, str)
                                            else pub_pem)
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def key_states(pki_dir):
    """{minion id: [(state, spki sha256 or None), ...]} for every key the master holds."""
    found = {}
    for directory, state in STATES.items():
        path = Path(pki_dir) / directory
        if not path.is_dir():
            continue
        for key_file in path.iterdir():
            if key_file.name.startswith(".") or not key_file.is_file():
                continue
            try:
                digest = spki_sha256(key_file.read_text())
            except ValueError:
                digest = None
            found.setdefault(key_file.name, []).append((state, digest))
    return found


def state_for(states, expected_sha256):
    """The key state of a node whose enrolled key is `expected_sha256`: a key of another
    fingerprint under the same id counts as 'mismatch', never as the node's."""
    entries = states or []
    for state in ("accepted", "pending", "rejected", "denied"):
        for entry_state, digest in entries:
            if entry_state == state:
                return state if digest == expected_sha256 else "mismatch"
    return None
