"""Installer credentials: the one owner of the `<cluster>.pem` format, both ends.

The controller seals (`seal`), the node opens (`open_credentials`). The node has only the Python
3.8+ standard library, so everything here is hashlib/hmac/base64/json/ssl; the controller's
`master/trust/pki.py` makes the certificates and keys and verifies enrollments with `cryptography`,
over the bytes `canonical_json` produces here.

File layout (text outside the armoured sections is a comment and ignored):

    -----BEGIN CERTIFICATE-----          the controller CA (the node's only HTTPS trust anchor)
    -----BEGIN CERTIFICATE-----          the installer certificate for this cluster
    -----BEGIN KUBESALT INSTALLER-----   base64 of canonical JSON:
        {"format": 1, "cluster", "controller": {address, publish_port, ret_port, https_port,
         master_finger}, "installer": {serial, not_after (RFC 3339 UTC)},
         "kdf": {"alg": "pbkdf2-sha256", salt, iterations}, "check", "nonce", "ciphertext",
         "mac", "digest"}
    The ciphertext holds the installer key's numbers and, when the cluster has one, its proxy
    settings (a proxy URL may carry the site's proxy password).

Keys. One PBKDF2-HMAC-SHA256 output of 32 bytes (the only slow step) is expanded with HMAC
under fixed labels into k_enc, k_mac and k_check. A single 32-byte PBKDF2 block, rather than
asking PBKDF2 for 96 bytes and slicing, matters: PBKDF2 computes each 32-byte block separately,
so an attacker guessing against the check value would only pay for one block while we paid
for three.

Cipher. The standard library has no block cipher, so the private key is encrypted with a
keystream of HMAC-SHA256(k_enc, nonce || 64-bit counter) blocks XORed onto the plaintext: HMAC
as a PRF in counter mode, which is a sound stream cipher as long as a (key, nonce) pair is never
reused; both are fresh for every seal (random salt -> fresh k_enc, and a random nonce).
Encrypt-then-MAC: the MAC (HMAC-SHA256 under k_mac) covers every field except itself and the
digest, and both certificate PEMs, so nothing an attacker can edit goes unnoticed, including
swapping in another CA. It is checked before anything is decrypted or trusted.

Errors are told apart on purpose, in this order: malformed (cannot be parsed), digest (a plain
SHA-256 over everything but itself: the file was damaged in transit, independent of the
passphrase), passphrase check (HMAC(k_check, label): a wrong passphrase, said as such instead of
"tampered"), MAC (authentic under this passphrase? a deliberate edit that recomputed the digest
fails here), then the cluster name and the expiry. Each has its own exit code for conjurer.

Signing. The installer key is RSA so the node can sign in pure Python: RSASSA-PKCS1-v1_5 with
SHA-256 is the DigestInfo prefix + hash, padded, raised to d mod n.
"""

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import re
import secrets
import ssl

FORMAT = 1
KDF_ALG = "pbkdf2-sha256"
MIN_ITERATIONS = 200000
# Above this a file would make the node spin for minutes: treat as damaged, not as a setting.
MAX_ITERATIONS = 20000000
DEFAULT_ITERATIONS = 600000
SECTION = "KUBESALT INSTALLER"
CERT_SECTION = "CERTIFICATE"

_LABEL_ENC = b"kubesalt-installer-v1 encryption"
_LABEL_MAC = b"kubesalt-installer-v1 authentication"
_LABEL_CHECK = b"kubesalt-installer-v1 passphrase-check"
_CHECK_MESSAGE = b"kubesalt-installer-v1 the passphrase is right"

# DER of DigestInfo{sha256, NULL} without the 32 hash bytes (RFC 8017, section 9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_CONTROLLER_FIELDS = ("address", "publish_port", "ret_port", "https_port", "master_finger")
_PORT_FIELDS = ("publish_port", "ret_port", "https_port")
_PROXY_FIELDS = ("http", "https", "no_proxy", "root_ca")


class CredentialsError(Exception):
    """Base of every refusal; `exit_code` is what conjurer exits with."""

    exit_code = 10


class MalformedCredentials(CredentialsError):
    exit_code = 10


class TamperedCredentials(CredentialsError):
    exit_code = 11


class WrongPassphrase(CredentialsError):
    exit_code = 12


class WrongCluster(CredentialsError):
    exit_code = 13


class ExpiredCredentials(CredentialsError):
    exit_code = 14


def canonical_json(obj):
    """The exact bytes that are hashed, MACed and signed, on both ends."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def generate_passphrase():
    """192 random bits, URL-safe so it survives copy and paste."""
    return secrets.token_urlsafe(24)


# ---- time ----------------------------------------------------------------------------------------

def _utc(value, field):
    """A timezone-aware UTC datetime from a datetime, epoch seconds or RFC 3339 string."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError("%s must be timezone-aware (UTC), got a naive datetime" % field)
        return value.astimezone(datetime.timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise ValueError("%s must look like 2030-01-31T12:00:00Z, got %r"
                             % (field, value)) from None
        return parsed.replace(tzinfo=datetime.timezone.utc)
    raise ValueError("%s must be a datetime, epoch seconds or an RFC 3339 string" % field)


def _rfc3339(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- primitives ----------------------------------------------------------------------------------

def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _unb64(text):
    return base64.b64decode(text.encode("ascii"), validate=True)


def _keys(passphrase, salt, iterations):
    master = hashlib.pbkdf2_hmac("sha256", passphrase.encode("utf-8"), salt, iterations)
    return (hmac.new(master, _LABEL_ENC, hashlib.sha256).digest(),
            hmac.new(master, _LABEL_MAC, hashlib.sha256).digest(),
            hmac.new(master, _LABEL_CHECK, hashlib.sha256).digest())


def _keystream_xor(key, nonce, data):
    out = bytearray()
    for counter in range((len(data) + 31) // 32):
        out += hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
    stream = bytes(out[:len(data)])
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def _check_value(k_check):
    return hmac.new(k_check, _CHECK_MESSAGE, hashlib.sha256).digest()


def _normalise_pem(pem):
    """The form a PEM block is authenticated in: line endings and stray spaces do not count."""
    lines = [line.strip() for line in pem.replace("\r\n", "\n").split("\n")]
    return "\n".join(line for line in lines if line) + "\n"


def _covered(record, ca_cert_pem, installer_cert_pem):
    return canonical_json({"certificates": [_normalise_pem(ca_cert_pem),
                                            _normalise_pem(installer_cert_pem)],
                           "record": record})


def _armour(name, data):
    body = _b64(data)
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (name, "\n".join(lines), name)


# ---- sealing (controller) ------------------------------------------------------------------------

def seal(cluster, controller, ca_cert_pem, installer_cert_pem, serial, not_after,
         private_numbers, passphrase, iterations=DEFAULT_ITERATIONS, proxy=None):
    """Return the text of `<cluster>.pem`. `private_numbers` is {"n", "e", "d"} as ints;
    `proxy` the cluster's proxy settings ({http, https, no_proxy, root_ca}) or None."""
    if not isinstance(cluster, str) or not cluster:
        raise ValueError("cluster must be a non-empty name")
    missing = [f for f in _CONTROLLER_FIELDS if f not in controller]
    if missing:
        raise ValueError("controller is missing %s" % ", ".join(missing))
    if not isinstance(passphrase, str) or len(passphrase) < 16 or passphrase != passphrase.strip():
        raise ValueError("passphrase must be at least 16 characters without surrounding "
                         "whitespace; use generate_passphrase()")
    if not isinstance(iterations, int) or not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError("iterations must be between %d and %d" % (MIN_ITERATIONS,
                                                                   MAX_ITERATIONS))
    for pem, field in ((ca_cert_pem, "ca_cert_pem"), (installer_cert_pem, "installer_cert_pem")):
        if _BEGIN.findall(pem) != [CERT_SECTION]:
            raise ValueError("%s must be exactly one PEM certificate" % field)
    numbers = {k: int(private_numbers[k]) for k in ("n", "e", "d")}
    if proxy:
        # Encrypted with the key: a proxy URL may hold the site's proxy password.
        numbers["proxy"] = _proxy_settings(proxy, ValueError)
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(16)
    k_enc, k_mac, k_check = _keys(passphrase, salt, iterations)
    record = {
        "format": FORMAT,
        "cluster": cluster,
        "controller": {k: controller[k] for k in controller},
        "installer": {"serial": str(serial),
                      "not_after": _rfc3339(_utc(not_after, "not_after"))},
        "kdf": {"alg": KDF_ALG, "salt": _b64(salt), "iterations": iterations},
        "check": _b64(_check_value(k_check)),
        "nonce": _b64(nonce),
        "ciphertext": _b64(_keystream_xor(k_enc, nonce, canonical_json(numbers))),
    }
    record["mac"] = _b64(hmac.new(k_mac, _covered(record, ca_cert_pem, installer_cert_pem),
                                  hashlib.sha256).digest())
    record["digest"] = hashlib.sha256(_covered(record, ca_cert_pem,
                                               installer_cert_pem)).hexdigest()
    return ("# kubesalt installer credentials for cluster %s. Secret: keep this file and its\n"
            "# passphrase file 0600 and copy them only to the nodes that join %s.\n"
            % (cluster, cluster)
            + _normalise_pem(ca_cert_pem) + _normalise_pem(installer_cert_pem)
            + _armour(SECTION, canonical_json(record)))


# ---- opening (node) ------------------------------------------------------------------------------

def _malformed(edge_name, what):
    return MalformedCredentials(
        "the credentials file is damaged or incomplete (%s); copy <cluster>.pem to this node "
        "again, whole, or download new credentials with salt-run cluster.installer %s"
        % (what, edge_name or "<cluster>"))


def _parse(text, edge_name):
    if not isinstance(text, str):
        raise _malformed(edge_name, "it is not text")
    blocks = _BLOCK.findall(text)
    if len(_BEGIN.findall(text)) != len(blocks):
        raise _malformed(edge_name, "a section has no END line: the file is truncated")
    certs = ["-----BEGIN %s-----\n%s\n-----END %s-----\n" % (n, b.strip(), n)
             for n, b in blocks if n == CERT_SECTION]
    installer = [b for n, b in blocks if n == SECTION]
    if len(certs) != 2 or len(installer) != 1 or len(blocks) != 3:
        raise _malformed(edge_name, "expected two CERTIFICATE sections and one %s section, "
                                    "found %s" % (SECTION, ", ".join(n for n, _ in blocks)
                                                  or "none"))
    try:
        for _, body in blocks:
            _unb64("".join(body.split()))
        record = json.loads(_unb64("".join(installer[0].split())).decode("utf-8"))
    except (binascii.Error, ValueError):
        raise _malformed(edge_name, "a section is not valid base64 or JSON") from None
    _check_shape(record, edge_name)
    return certs[0], certs[1], record


def _check_shape(record, edge_name):
    def need(condition, what):
        if not condition:
            raise _malformed(edge_name, what)

    need(isinstance(record, dict), "the installer section is not a JSON object")
    need(record.get("format") == FORMAT, "format %r is not one this conjurer reads (%d)"
         % (record.get("format"), FORMAT))
    for field in ("cluster", "check", "nonce", "ciphertext", "mac", "digest"):
        need(isinstance(record.get(field), str) and record[field], "%s is missing" % field)
    controller = record.get("controller")
    need(isinstance(controller, dict), "controller is missing")
    for field in _CONTROLLER_FIELDS:
        need(field in controller, "controller.%s is missing" % field)
    for field in _PORT_FIELDS:
        port = controller[field]
        need(isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536,
             "controller.%s is not a port" % field)
    installer = record.get("installer")
    need(isinstance(installer, dict) and isinstance(installer.get("serial"), str)
         and isinstance(installer.get("not_after"), str), "installer serial/not_after missing")
    try:
        _utc(installer["not_after"], "installer.not_after")
    except ValueError:
        raise _malformed(edge_name, "installer.not_after is not an RFC 3339 UTC time") from None
    kdf = record.get("kdf")
    need(isinstance(kdf, dict) and kdf.get("alg") == KDF_ALG, "kdf.alg is not " + KDF_ALG)
    need(isinstance(kdf.get("salt"), str), "kdf.salt is missing")
    iterations = kdf.get("iterations")
    need(isinstance(iterations, int) and not isinstance(iterations, bool)
         and MIN_ITERATIONS <= iterations <= MAX_ITERATIONS,
         "kdf.iterations must be between %d and %d" % (MIN_ITERATIONS, MAX_ITERATIONS))
    try:
        for field in ("check", "nonce", "ciphertext", "mac"):
            _unb64(record[field])
        _unb64(kdf["salt"])
    except (binascii.Error, ValueError):
        raise _malformed(edge_name, "a field is not valid base64") from None


def open_credentials(text, passphrase, edge_name, now=None):
    """Check and decrypt `<cluster>.pem`; raises a CredentialsError subclass on any doubt.

    Nothing here touches the node: conjurer calls this before it changes anything.
    """
    ca_pem, installer_pem, record = _parse(text, edge_name)
    unsigned = {k: v for k, v in record.items() if k != "digest"}
    digest = hashlib.sha256(_covered(unsigned, ca_pem, installer_pem)).hexdigest()
    if not hmac.compare_digest(digest, record["digest"]):
        raise TamperedCredentials(
            "the credentials file was altered or damaged after it was issued (its checksum does "
            "not match); copy it again from where cluster.installer wrote it, or download new "
            "credentials with salt-run cluster.installer %s" % edge_name)
    kdf = record["kdf"]
    k_enc, k_mac, k_check = _keys((passphrase or "").strip(), _unb64(kdf["salt"]),
                                  kdf["iterations"])
    if not hmac.compare_digest(_check_value(k_check), _unb64(record["check"])):
        raise WrongPassphrase(
            "the passphrase does not open these credentials; use the <cluster>-passphrase.txt "
            "that cluster.installer wrote together with this <cluster>.pem")
    unmacced = {k: v for k, v in unsigned.items() if k != "mac"}
    mac = hmac.new(k_mac, _covered(unmacced, ca_pem, installer_pem), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, _unb64(record["mac"])):
        raise TamperedCredentials(
            "the credentials file was edited after it was issued (its authentication code does "
            "not match the passphrase); do not use it: download new credentials with "
            "salt-run cluster.installer %s" % edge_name)
    cluster = record["cluster"]
    if cluster != edge_name:
        raise WrongCluster(
            "these credentials are for cluster %r but -edge-name is %r; run with "
            "-edge-name=%s, or use the credentials of cluster %s"
            % (cluster, edge_name, cluster, edge_name))
    not_after = _utc(record["installer"]["not_after"], "not_after")
    moment = _utc(now, "now") if now is not None else \
        datetime.datetime.now(datetime.timezone.utc)
    if moment >= not_after:
        raise ExpiredCredentials(
            "the installer credentials for cluster %s expired on %s; download new credentials "
            "with salt-run cluster.installer %s" % (cluster, _rfc3339(not_after), cluster))
    try:
        numbers = json.loads(_keystream_xor(k_enc, _unb64(record["nonce"]),
                                            _unb64(record["ciphertext"])).decode("ascii"))
        key = _RsaKey(int(numbers["n"]), int(numbers["e"]), int(numbers["d"]))
    except (ValueError, KeyError, TypeError):
        raise _malformed(edge_name, "the installer key inside is not usable") from None
    proxy = numbers.get("proxy")
    if proxy is not None:
        proxy = _proxy_settings(proxy, lambda what: _malformed(edge_name, what))
    return Credentials(cluster, dict(record["controller"]), record["installer"]["serial"],
                       not_after, ca_pem, installer_pem, key, proxy)


def _proxy_settings(proxy, error):
    if not isinstance(proxy, dict) or set(proxy) - set(_PROXY_FIELDS) \
            or not all(isinstance(proxy.get(k, ""), str) for k in _PROXY_FIELDS):
        raise error("proxy must be a mapping of %s to text" % ", ".join(_PROXY_FIELDS))
    return {k: proxy.get(k) or "" for k in _PROXY_FIELDS}


class _RsaKey:
    __slots__ = ("_d", "e", "n")

    def __init__(self, n, e, d):
        if n < 2 ** 2047 or not 1 < e < n or not 1 < d < n:
            raise ValueError("not an RSA-2048-or-larger key")
        # A wrong d would produce signatures the controller rejects much later; catch it here.
        if pow(pow(2, e, n), d, n) != 2:
            raise ValueError("d does not invert e")
        self.n, self.e, self._d = n, e, d

    def __repr__(self):
        return "<RSA-%d installer key>" % self.n.bit_length()

    def sign(self, data):
        size = (self.n.bit_length() + 7) // 8
        digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
        encoded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
        signature = pow(int.from_bytes(encoded, "big"), self._d, self.n)
        # Verifying our own signature costs a cheap public-exponent pow and rules out a
        # silently corrupted result.
        if pow(signature, self.e, self.n) != int.from_bytes(encoded, "big"):
            raise ValueError("RSA signing produced an invalid signature")
        return signature.to_bytes(size, "big")


class Credentials:
    """Opened credentials. The private key is held inside and only used through sign()."""

    def __init__(self, cluster, controller, serial, not_after, ca_cert_pem, installer_cert_pem,
                 key, proxy=None):
        self.cluster = cluster
        self.controller = controller
        self.serial = serial
        self.not_after = not_after
        self.ca_cert_pem = ca_cert_pem
        self.installer_cert_pem = installer_cert_pem
        self._key = key
        # The cluster's proxy settings (http, https, no_proxy, root_ca), or None.
        self.proxy = proxy
        # The proxy.Proxy conjurer reaches the controller through (None: direct); conjurer
        # chooses it from `proxy` and its -proxy flag.
        self.route = None

    def __repr__(self):
        return "<Credentials cluster=%s serial=%s not_after=%s>" % (
            self.cluster, self.serial, _rfc3339(self.not_after))

    def sign(self, data):
        """RSASSA-PKCS1-v1_5 with SHA-256 over `data` (bytes) with the installer key."""
        if not isinstance(data, bytes):
            raise TypeError("sign() takes bytes")
        return self._key.sign(data)

    def enrollment_request(self, node_id, minion_pub_pem, now, facts=None):
        """The request conjurer posts to the controller, and its base64 signature over
        canonical_json(request); `facts` (facts.gather) travel signed with it."""
        issued_at = int(_utc(now, "now").timestamp())
        request = {
            "cluster": self.cluster,
            "node_id": node_id,
            "minion_pub_sha256": hashlib.sha256(minion_pub_pem.strip().encode()).hexdigest(),
            "serial": self.serial,
            "issued_at": issued_at,
        }
        if facts:
            request["facts"] = facts
        return request, _b64(self.sign(canonical_json(request)))

    def check_request(self, node_id, now, held_pub_pem=None):
        """A signed "would this node enroll?" request, asked of the controller before conjurer
        changes anything: are these credentials still good, and is node_id free for the
        minion key this node already holds (`held_pub_pem`, from an earlier run; None for
        none)? It has no minion_pub_sha256, so it can never be replayed as an enrollment. The
        controller refuses a request it has seen: the nonce keeps two runs within one second
        (a -precheck, then the install) from being the same request."""
        request = {
            "purpose": "check",
            "nonce": secrets.token_hex(16),
            "cluster": self.cluster,
            "node_id": node_id,
            "serial": self.serial,
            "issued_at": int(_utc(now, "now").timestamp()),
            "held_pub_sha256": (hashlib.sha256(held_pub_pem.strip().encode()).hexdigest()
                                if held_pub_pem else None),
        }
        return request, _b64(self.sign(canonical_json(request)))

    def ssl_context(self):
        """TLS client context that trusts only this controller's CA, hostname checked."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=self.ca_cert_pem)
        return context
