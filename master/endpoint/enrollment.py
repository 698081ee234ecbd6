"""Enrollment: a node proves it holds valid installer credentials for a cluster.

conjurer signs {cluster, node_id, sha256 of its minion public key, installer serial, time and
the facts it reports about the node (node_facts)} with the installer key and posts it with the
installer certificate. The controller checks the chain to its CA, expiry, revocation and
cluster, then records the node and the exact minion key it may use. Salt's key store stays
the approval record: with auto_approve the key is pre-seeded as accepted (Salt's documented
pre-seeding); otherwise it waits as a pending key, and only a pending key whose fingerprint
matches an enrollment is a DISCOVERED node.

A signed request is good once. Its signature proves who made it, not that the sender is the
one who made it, and it stays inside the clock window for 10 minutes, so anyone who saw it
(a proxy's log, a copy of the traffic) could send it again. The controller records every
request it accepts, by the SHA-256 of what the signature covers, in its store (a restart of
the master must not reopen the window), and refuses the same one again with reason
"replay". conjurer signs a new request, with the time it is sent, for every call, so its
retries and reruns are new requests.
"""

import base64
import hashlib
import ipaddress
import math
import os
import re
import time
from pathlib import Path

from kubesalt.minion_bootstrap.credentials import canonical_json

from kubesalt.master.endpoint import node_facts, node_ids
from kubesalt.master.inventory import keys
from kubesalt.master.trust import pki

# How far the node's clock may be from ours; conjurer's precheck allows less.
MAX_CLOCK_SKEW = 600
# How long an accepted request is remembered: past the clock window by as much again, so a
# controller clock stepped back (NTP) does not make a forgotten request acceptable again.
REPLAY_MEMORY = 2 * MAX_CLOCK_SKEW
_NODE_ID = re.compile(r"^node-[a-z0-9]{4,16}-[0-9-]{7,15}-[a-z0-9-]{1,32}$")


class EnrollmentRefused(Exception):
    def __init__(self, code, reason, message):
        super().__init__(message)
        self.code = code
        self.reason = reason


def pub_sha256(pub_pem):
    """What conjurer signs: the hash of the PEM text it read."""
    return hashlib.sha256(pub_pem.strip().encode()).hexdigest()


ENROLL_FIELDS = ("cluster", "node_id", "minion_pub_sha256", "serial", "issued_at")
CHECK_FIELDS = ("purpose", "cluster", "node_id", "serial", "issued_at")


def _parse(payload, fields, extra=()):
    """(request, issued_at, signature bytes, installer cert, *extra payload strings), or a 400
    naming what a well-formed body holds."""
    try:
        request = payload["request"]
        for field in fields:
            request[field]  # noqa: B018 - presence check
        issued_at = _issued_at(request["issued_at"])
        signature = base64.b64decode(payload["signature"], validate=True)
        return (request, issued_at, signature, str(payload["installer_cert"]),
                *(str(payload[k]) for k in extra))
    except (KeyError, TypeError, ValueError):
        raise EnrollmentRefused(400, "malformed", f"the body needs request ({', '.join(fields)}"
                                                   "), signature, installer_cert"
                                                   + "".join(f", {k}" for k in extra)
                                                   + "; issued_at is a finite number of "
                                                     "seconds since the epoch") from None


def _issued_at(value):
    """Seconds since the epoch as a finite float. conjurer sends an integer, so nothing but a
    number is taken: float() of a string reads "nan", which passes any clock window (every
    comparison with NaN is false)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("issued_at must be a number")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError("issued_at is out of range") from None
    if not math.isfinite(seconds):
        raise ValueError("issued_at must be finite")
    return seconds


def _check_shape(payload):
    request, issued_at, signature, cert, minion_pub = _parse(payload, ENROLL_FIELDS,
                                                             ("minion_pub",))
    if not isinstance(request["node_id"], str) or not _NODE_ID.match(request["node_id"]):
        raise EnrollmentRefused(400, "malformed", "node_id is not node-<id>-<ip>-<cluster>")
    if not request["node_id"].endswith("-" + str(request["cluster"])):
        raise EnrollmentRefused(400, "malformed", "node_id does not end with the cluster name")
    return request, issued_at, signature, cert, minion_pub


def _verify(store, layout, request, issued_at, signature, cert, now):
    if abs(issued_at - now) > MAX_CLOCK_SKEW:
        raise EnrollmentRefused(403, "clock", "the node's clock is more than 10 minutes off "
                                              "the controller's; fix its time (NTP) and retry")
    cluster = str(request["cluster"])
    valid = store.valid_installer_serials(cluster, now=now)
    ca_pem = (layout.kubesalt_pki / "ca.crt").read_text()
    ok, reason = pki.verify_enrollment(ca_pem, cert, request, signature, now, valid)
    if not ok:
        raise EnrollmentRefused(403, reason, _REFUSALS.get(reason, reason).format(cluster))
    # Recorded only once verified: a forged request must not use up the one it imitates.
    digest = hashlib.sha256(canonical_json(request)).hexdigest()
    if not store.remember_request(digest, issued_at + REPLAY_MEMORY, now=now):
        raise EnrollmentRefused(403, "replay", "this signed request was already used; conjurer "
                                               "signs a new one each time it runs: run it "
                                               "again")


def check(store, layout, payload, now=None):
    """Would this node enroll now: these installer credentials (not revoked, replaced or
    expired) and its node id (no other key under it, see node_ids)? conjurer asks before it
    changes anything on the node, and learns the cluster's `os` for its prechecks. Records
    nothing but the request itself, against its replay.

    The id is checked when the request says which key the node holds (`held_pub_sha256`,
    null for none, its PEM as `minion_pub`); a conjurer older than that field is not asked
    about its id, and its enrollment still refuses a second key."""
    now = time.time() if now is None else now
    request, issued_at, signature, cert = _parse(payload, CHECK_FIELDS)
    if request["purpose"] != "check":
        raise EnrollmentRefused(400, "malformed", "request.purpose must be check")
    held = _held_key(request, payload)
    _verify(store, layout, request, issued_at, signature, cert, now)
    cluster = str(request["cluster"])
    if "held_pub_sha256" in request:
        refused = node_ids.refusal(store, layout.pki_dir, cluster, str(request["node_id"]),
                                   held)
        if refused:
            reason, message = refused
            raise EnrollmentRefused(403 if reason == "rejected" else 409, reason, message)
    return {"ok": True, "cluster": cluster, "os": store.cluster(cluster).spec.os}


def _held_key(request, payload):
    """The SPKI sha256 of the key the node says it holds (signed as the hash of its PEM), or
    None."""
    claimed = request.get("held_pub_sha256")
    if claimed is None:
        return None
    pem = payload.get("minion_pub")
    if not isinstance(pem, str) or pub_sha256(pem) != claimed:
        raise EnrollmentRefused(400, "malformed", "minion_pub does not match the signed "
                                                  "held_pub_sha256")
    try:
        return keys.spki_sha256(pem)
    except ValueError:
        raise EnrollmentRefused(400, "malformed", "minion_pub is not a PEM public key") \
            from None


def named_address(node_id, cluster):
    """The address in a node's id (node-<id>-<ip with dashes>-<cluster>): the one its kernel
    picks to reach the controller. None when the id holds no address."""
    middle = node_id[len("node-"):-len(cluster) - 1]
    dashed = middle.partition("-")[2]
    try:
        return str(ipaddress.IPv4Address(dashed.replace("-", ".")))
    except ValueError:
        return None


def enroll(store, layout, payload, address, now=None, relays=()):
    """Verify and record an enrollment. Returns the node's status after it. `address` is the
    request's peer; `relays` the controller's own addresses, which the agent gateway relays
    from: a request from one came from a node behind a proxy or one port, whose own address
    is then the one its verified id names."""
    now = time.time() if now is None else now
    request, issued_at, signature, cert, minion_pub = _check_shape(payload)
    if pub_sha256(minion_pub) != request["minion_pub_sha256"]:
        raise EnrollmentRefused(400, "malformed", "minion_pub does not match the signed hash")
    _verify(store, layout, request, issued_at, signature, cert, now)
    cluster = str(request["cluster"])
    node_id = request["node_id"]
    if address in relays:
        address = named_address(node_id, cluster) or address
    try:
        fingerprint = keys.spki_sha256(minion_pub)
    except ValueError:
        raise EnrollmentRefused(400, "malformed", "minion_pub is not a PEM public key") from None
    key_state = keys.state_for(keys.key_states(layout.pki_dir).get(node_id), fingerprint)
    if key_state == "mismatch":
        _, message = node_ids.refusal(store, layout.pki_dir, cluster, node_id, fingerprint)
        raise EnrollmentRefused(409, "conflict", message)
    if key_state in ("rejected", "denied"):
        raise EnrollmentRefused(403, "rejected", f"{node_id} was rejected by an operator")
    record = store.enroll_node(node_id, cluster, fingerprint, request["serial"], address, now,
                               facts=node_facts.clean(request.get("facts")))
    auto = store.cluster(cluster).spec.auto_approve
    if auto and key_state != "accepted":
        preseed_key(layout, node_id, minion_pub)
        key_state = "accepted"
    return {"node_id": node_id, "cluster": cluster,
            "status": "APPROVED" if key_state == "accepted" else "DISCOVERED",
            "enrolled_at": record["enrolled_at"]}


_REFUSALS = {
    "expired": "these installer credentials have expired; download new ones with "
               "salt-run cluster.installer {0}",
    "revoked": "these installer credentials were revoked or replaced; download new ones with "
               "salt-run cluster.installer {0}",
    "wrong-cluster": "these installer credentials are not for cluster {0}",
    "bad-signature": "the enrollment signature does not verify; the credentials are damaged",
    "untrusted": "the installer certificate was not issued by this controller",
}


def preseed_key(layout, node_id, minion_pub):
    """Accept the key before the minion first connects (Salt's pre-seeding); a pending copy
    from an earlier start of the same minion goes."""
    pending = Path(layout.pki_dir) / "minions_pre" / node_id
    if pending.exists():
        pending.unlink()
    directory = Path(layout.pki_dir) / "minions"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / node_id
    tmp = directory / f".{node_id}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(minion_pub.strip() + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
