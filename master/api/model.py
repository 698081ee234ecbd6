"""The REST API's model: which runner functions it serves, who may call which, how a request
is checked, and the user store behind Salt's `file` eauth.

master/api/openapi.yaml is the single description: the functions served are the `fun` values of
its request schemas, and every request is checked against those schemas here (a small
validator for the JSON Schema subset the file uses) before Salt sees it.

The ACLs are Salt's own (`external_auth`); this module renders them from ROLES so the REST
layer and Salt agree on who may call what.
"""

import collections
import functools
import json
import math
import os
import re
import threading
import time
from pathlib import Path

import yaml

OPENAPI = Path(__file__).with_name("openapi.yaml")

# Salt's file eauth reads this htpasswd-style file (passlib); PAM is the documented alternative.
EAUTH = "file"
VIEWER_FUNCTIONS = ("cluster.list", "cluster.show", "cluster.status", "cluster.options",
                    "cluster.upgrades", "node.list", "node.show", "artifacts.list")
ROLE_NAMES = ("operator", "viewer")
# Runners that only read: the API runs them in its own process (kubesalt_api), the rest
# through the master.
READS = frozenset(VIEWER_FUNCTIONS)
USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")

# Keys of a request that salt-api itself consumes; everything else is a runner argument.
ENVELOPE = ("client", "fun")

# What one request may cost before anyone has logged in, or at all: the largest body (the
# HTTP server refuses a larger one from its Content-Length, before reading it), the deepest
# JSON nesting (kubesalt's deepest argument, a label value, is at level 3) and the most
# runner calls in one request.
MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_CALLS = 10


class ApiError(Exception):
    """A request refused before Salt sees it: an HTTP status and a message, and for a runner
    argument the field it names (the same field the runner's own refusal would name)."""

    def __init__(self, status, message, field=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def as_refusal(self):
        """What a runner returns when it refuses: the API answers argument errors the same
        way, so a client reads one shape whichever check refused."""
        text = self.message.split(": ", 1)[-1] if self.field else self.message
        return {"result": False, "retcode": 2,
                "errors": [{"field": self.field or "request", "message": text}]}


_WHERE_PREFIX = re.compile(r"^request(\[\d+\])?\.?")


def _invalid(where, text, field=None):
    """ApiError(400) for `where` ("request.labels.env") naming its runner field
    ("labels.env")."""
    return ApiError(400, f"{where or 'request'}: {text}",
                    field or _WHERE_PREFIX.sub("", where or "") or None)


@functools.lru_cache(maxsize=1)
def description():
    with open(OPENAPI, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _resolve(schema):
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = description()["components"]["schemas"][name]
    return schema


def function_schemas():
    """{fun: schema} for every runner function the API serves."""
    body = description()["paths"]["/"]["post"]["requestBody"]["content"]["application/json"]
    result = {}
    for ref in body["schema"]["oneOf"]:
        schema = _resolve(ref)
        result[schema["properties"]["fun"]["enum"][0]] = schema
    return result


def roles():
    """{role: [runner functions]}: the ACLs `external_auth` gets."""
    served = sorted(function_schemas())
    return {"operator": served, "viewer": sorted(VIEWER_FUNCTIONS)}


def acl(role):
    """A Salt eauth ACL entry list for a role: runner functions only, named one by one."""
    return [{"@runner": list(roles()[role])}]


# ---- request checking --------------------------------------------------------------------

_TYPES = {"string": str, "object": dict, "array": list, "boolean": bool}


def _type_ok(value, kind):
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def validate(value, schema, where):
    """Raise ApiError(400) naming the first place `value` breaks `schema` (the JSON Schema
    subset openapi.yaml uses: type, nullable, enum, min/maxLength, minimum/maximum, required,
    properties, additionalProperties, maxProperties, items)."""
    schema = _resolve(schema)
    if value is None:
        if schema.get("nullable") or not schema:
            return
        raise _invalid(where, "must not be null")
    kind = schema.get("type")
    if kind and not _type_ok(value, kind):
        raise _invalid(where, f"must be {'an' if kind[0] in 'aeio' else 'a'} {kind}")
    if "enum" in schema and value not in schema["enum"]:
        raise _invalid(where, f"must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise _invalid(where, "must not be empty")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise _invalid(where, f"longer than {schema['maxLength']} characters")
        if "\x00" in value:
            raise _invalid(where, "must not contain NUL characters")
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            raise _invalid(where, f"must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _invalid(where, f"must be at most {schema['maximum']}")
    if isinstance(value, dict):
        _validate_object(value, schema, where)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{i}]")


def _validate_object(value, schema, where):
    for key in value:
        if not isinstance(key, str):
            raise _invalid(where, "keys must be strings")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise _invalid(where, f"at most {schema['maxProperties']} entries")
    missing = [k for k in schema.get("required", ()) if k not in value]
    if missing:
        raise _invalid(where, f"missing {', '.join(missing)}", missing[0])
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            validate(item, properties[key], f"{where}.{key}" if where else key)
        elif extra is False:
            allowed = ", ".join(k for k in properties if k not in ENVELOPE) or "none"
            raise _invalid(where, f"unknown parameter {key!r} (allowed: {allowed})", key)
        elif isinstance(extra, dict):
            validate(item, extra, f"{where}.{key}" if where else key)


def parse_json(raw):
    """The JSON value of a request body (bytes), or ApiError(400): not UTF-8, not JSON, or
    nested deeper than MAX_DEPTH. Nesting is checked without recursion; json's own parser
    recurses and raises RecursionError on very deep input, which is the same answer."""
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the body cannot be read as application/json: "
                            f"{type(exc).__name__}") from None
    except RecursionError:
        raise ApiError(400, f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise ApiError(400, f"Invalid JSON document: {exc}") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise ApiError(400, f"the body is nested deeper than {MAX_DEPTH} levels")
    return value


def _depth_exceeds(value, limit):
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def check_login(body):
    """The credentials of a /login body, or ApiError(400)."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object with username, password and eauth")
    validate(body, description()["components"]["schemas"]["Login"], "")
    return body


def check_chunks(lowstate):
    """The runner calls of a POST / body (one object, or a list of them): [(fun, chunk)].

    400 for anything malformed, 403 for a client other than runner or a function kubesalt
    does not serve. Whether the user's role allows `fun` is checked separately (it needs
    the session)."""
    if isinstance(lowstate, dict):
        lowstate = [lowstate]
    if not isinstance(lowstate, list) or not lowstate:
        raise ApiError(400, "the body must be a JSON object {client: runner, fun: ..., "
                            "arguments...} or a non-empty list of them")
    if len(lowstate) > MAX_CALLS:
        raise ApiError(400, f"at most {MAX_CALLS} calls per request ({len(lowstate)} sent); "
                            "send the rest in further requests")
    schemas = function_schemas()
    calls = []
    for index, chunk in enumerate(lowstate):
        where = f"request[{index}]" if len(lowstate) > 1 else "request"
        if not isinstance(chunk, dict):
            raise ApiError(400, f"{where}: must be a JSON object")
        client = chunk.get("client")
        if client is None:
            raise ApiError(400, f"{where}: missing client (kubesalt serves client=runner)")
        if client != "runner":
            raise ApiError(403, f"{where}: client {str(client)[:40]!r} is not served; "
                                "kubesalt's API serves client=runner only")
        fun = chunk.get("fun")
        if not isinstance(fun, str) or not fun:
            raise ApiError(400, f"{where}: fun must name a runner function, e.g. cluster.list")
        if fun not in schemas:
            raise ApiError(403, f"{where}: {fun[:80]!r} is not a kubesalt API function; served: "
                                f"{', '.join(sorted(schemas))}")
        calls.append((fun, chunk))
    return calls


def check_arguments(fun, chunk, where="request"):
    validate(chunk, function_schemas()[fun], where)


# ---- failed logins ----------------------------------------------------------------------

class LoginThrottle:
    """Slows password guessing at /login: failed logins are counted per user name and per
    client address, in the memory of the salt-api process, shared by its worker threads.

    A name (address) with `per_user` (`per_address`) failures within `window` seconds is
    refused until `window` seconds after its last failure, and each further failure doubles
    that wait, up to `max_delay`. Failures leave the window one by one, but not while the key
    is refused nor within `window` after: the first guess after a wait that fails again must
    wait longer, not start over. A successful login forgets its name's failures (not its
    address's: an account of one's own must not reset the count for guessing others).

    An attempt counts against the limits from admit() on, until it is settled: otherwise
    parallel requests would all be checked before the first failure is recorded. So at most
    `per_user` logins of one name (`per_address` of one address) are checked at a time.
    """

    def __init__(self, window=60.0, per_user=5, per_address=20, max_delay=900.0,
                 max_keys=10000, clock=time.monotonic):
        self.window = window
        self.limits = {"user": per_user, "address": per_address}
        self.max_delay = max_delay
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._records = collections.OrderedDict()  # (kind, value) -> _Record, oldest first

    class _Record:
        __slots__ = ("failures", "pending", "until")

        def __init__(self):
            self.failures = collections.deque()
            self.pending = 0
            self.until = 0.0

    def admit(self, user, address):
        """0 if the attempt may be checked (it then counts as in flight until failed(),
        succeeded() or abandoned()), else the seconds to wait (an int >= 1)."""
        with self._lock:
            now = self.clock()
            keys = self._keys(user, address)
            wait = max(self._wait(key, now) for key in keys)
            if wait > 0:
                return max(1, math.ceil(wait))
            for key in keys:
                self._record(key).pending += 1
            return 0

    def failed(self, user, address):
        """Record a failed login; returns the failures counted for the user name."""
        with self._lock:
            now = self.clock()
            counts = []
            for key in self._keys(user, address):
                record = self._record(key)
                record.pending = max(0, record.pending - 1)
                self._age(record, now)
                record.failures.append(now)
                self._records.move_to_end(key)
                counts.append(len(record.failures))
                excess = counts[-1] - self.limits[key[0]]
                if excess >= 0:
                    record.until = now + min(self.window * 2 ** min(excess, 32),
                                             self.max_delay)
            return counts[0]

    def succeeded(self, user, address):
        with self._lock:
            user_key, address_key = self._keys(user, address)
            self._settle(address_key)
            record = self._records.get(user_key)
            if record is not None:
                record.failures.clear()
                record.until = 0.0
                self._settle(user_key)

    def abandoned(self, user, address):
        """The attempt ended without a verdict on the password (e.g. the master is down)."""
        with self._lock:
            for key in self._keys(user, address):
                self._settle(key)

    @staticmethod
    def _keys(user, address):
        return ("user", user), ("address", address)

    def _record(self, key):
        record = self._records.get(key)
        if record is None:
            if len(self._records) >= self.max_keys:
                self._sweep()
            record = self._records[key] = self._Record()
        return record

    def _age(self, record, now):
        if now >= record.until + self.window:
            while record.failures and record.failures[0] <= now - self.window:
                record.failures.popleft()

    def _wait(self, key, now):
        record = self._records.get(key)
        if record is None:
            return 0
        self._age(record, now)
        if record.until > now:
            return record.until - now
        if record.pending and len(record.failures) + record.pending >= self.limits[key[0]]:
            return 1  # guesses already in flight: one more would pass the limit
        return 0

    def _settle(self, key):
        record = self._records.get(key)
        if record is None:
            return
        record.pending = max(0, record.pending - 1)
        self._forget_if_idle(key, self.clock())

    def _forget_if_idle(self, key, now):
        record = self._records[key]
        self._age(record, now)
        if not record.failures and not record.pending and record.until <= now:
            del self._records[key]

    def _sweep(self):
        """Bounded memory: drop idle records; if still full (many addresses or names at
        once), drop the records whose last failure is oldest."""
        now = self.clock()
        for key in list(self._records):
            self._forget_if_idle(key, now)
        while len(self._records) >= self.max_keys:
            self._records.popitem(last=False)


# ---- user store -------------------------------------------------------------------------

def read_roles(layout):
    try:
        with open(layout.api_roles_file, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in (data.get("users") or {}).items()}


def external_auth(layout):
    """Salt's `external_auth`: the file eauth over the user store, one ACL per user."""
    users = read_roles(layout)
    provider = {"^filename": str(layout.api_users_file), "^filetype": "htpasswd"}
    for name, role in sorted(users.items()):
        if role in ROLE_NAMES:
            provider[name] = acl(role)
    return {EAUTH: provider}


def _write_private(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ensure_user_store(layout):
    """An empty user store on a fresh controller (the file eauth needs the file to exist)."""
    if not layout.api_users_file.exists():
        _write_private(layout.api_users_file, "")
    os.chmod(layout.api_users_file, 0o600)


def check_user_name(name):
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise ValueError(f"user name {name!r}: use 1-32 of a-z, 0-9, _ . - (starting with a "
                         "letter or _)")


def add_user(layout, name, role, password):
    """Add a user or change their role/password. Returns True if the ACLs changed (the
    running master and salt-api read them at start)."""
    from passlib.apache import HtpasswdFile  # noqa: PLC0415 - only the CLI writes users

    check_user_name(name)
    if role not in ROLE_NAMES:
        raise ValueError(f"role must be one of {', '.join(ROLE_NAMES)}")
    if not password or "\n" in password:
        raise ValueError("the password must be one non-empty line")
    ensure_user_store(layout)
    store = HtpasswdFile(str(layout.api_users_file), default_scheme="sha512_crypt")
    store.set_password(name, password)
    _write_private(layout.api_users_file, store.to_string().decode())
    users = read_roles(layout)
    changed = users.get(name) != role
    users[name] = role
    _write_roles(layout, users)
    return changed


def remove_user(layout, name):
    from passlib.apache import HtpasswdFile  # noqa: PLC0415

    users = read_roles(layout)
    if name not in users:
        raise ValueError(f"no API user named {name!r}")
    ensure_user_store(layout)
    store = HtpasswdFile(str(layout.api_users_file))
    store.delete(name)
    _write_private(layout.api_users_file, store.to_string().decode())
    del users[name]
    _write_roles(layout, users)
    return True


def _write_roles(layout, users):
    _write_private(layout.api_roles_file,
                   "# Written by kubesalt-controller user add/remove.\n"
                   + yaml.safe_dump({"users": dict(sorted(users.items()))},
                                    default_flow_style=False))
