"""Salt's key store read as kubesalt's approval record.

pending (minions_pre) = DISCOVERED, accepted (minions) = APPROVED, rejected = REJECTED. Keys are
compared by the SHA-256 of their SubjectPublicKeyInfo, so formatting differences in the PEM
text never matter.
"""

import base64
import binascii
import hashlib
import os
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


_SPKI_BEGIN, _SPKI_END = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"


def stored_key_sha256(text):
    """spki_sha256 of a key file in the master's key store, without parsing the key when it
    is a "PUBLIC KEY" PEM (what Salt writes): that block's body is the SubjectPublicKeyInfo's
    DER itself. key_states reads every key on every node.list and every node's pillar, and
    parsing each one cost about 0.1 ms, half a second for 5,000 nodes. Anything else is
    parsed; ValueError when it is no key at all."""
    body = text.strip()
    if body.startswith(_SPKI_BEGIN) and body.endswith(_SPKI_END):
        try:
            der = base64.b64decode("".join(body[len(_SPKI_BEGIN):-len(_SPKI_END)].split()),
                                   validate=True)
        except binascii.Error:
            der = b""
        if der:
            return hashlib.sha256(der).hexdigest()
    return spki_sha256(text)


def key_states(pki_dir):
    """{minion id: [(state, spki sha256 or None), ...]} for every key the master holds."""
    found = {}
    for directory, state in STATES.items():
        try:
            entries = list(os.scandir(Path(pki_dir) / directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            # scandir's entries know their type without a stat call each: thousands of keys
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                with open(entry.path, encoding="utf-8", errors="replace") as handle:
                    digest = stored_key_sha256(handle.read())
            except FileNotFoundError:  # deleted meanwhile (a key rejected or forgotten)
                continue
            except ValueError:
                digest = None
            found.setdefault(entry.name, []).append((state, digest))
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
