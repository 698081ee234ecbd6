"""Code shared by the kubeadm, kubelet and kubectl lab stand-ins (tests/labkit/bin): paths
re-rooted for the host unit tests, failure markers, atomic writes, durations, YAML, HTTPS to the
API server stand-in, kubeconfigs, openssl, bootstrap-token signatures, versions, merge patches,
and failures and long steps on demand (fail-/hold- markers).

It is not a module the stand-ins import. Each stand-in has a marked region that, run from the
source tree, executes this file into the stand-in's own globals, so the two read as one file;
tests/labkit/artifacts.py pastes this file over that region when it builds the artifact, so a
node gets one self-contained stand-in, installed like the real binary.
Python 3.11 stdlib + PyYAML (Debian's python3-yaml on lab nodes).
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.environ.get("KUBESALT_STANDIN_ROOT", "")
MARKER_DIR = "/etc/kubesalt-standin"


def rooted(path):
    """Every absolute path a stand-in touches. KUBESALT_STANDIN_ROOT re-roots them for the host
    unit tests only; in the lab it is unset and the stand-ins use the real paths."""
    if ROOT and path.startswith("/"):
        return os.path.join(ROOT, path.lstrip("/"))
    return path


def die(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


def check_fail_markers(tool, words):
    """Failure on demand: /etc/kubesalt-standin/fail-<tool>-<word>[-<word>...] for every prefix
    of the subcommand words (fail-kubeadm-upgrade also fails `kubeadm upgrade apply`).
    A long step on demand first: while hold-<tool>-<word>[-<word>...] exists, the stand-in
    waits before doing anything (what a slow real command looks like to its caller)."""
    holds = [rooted(os.path.join(MARKER_DIR, "hold-" + "-".join([tool, *words[:count]])))
             for count in range(1, len(words) + 1)]
    while any(os.path.exists(marker) for marker in holds):
        time.sleep(0.2)
    for count in range(1, len(words) + 1):
        name = "fail-" + "-".join([tool, *words[:count]])
        marker = rooted(os.path.join(MARKER_DIR, name))
        if os.path.exists(marker):
            with open(marker, encoding="utf-8", errors="replace") as handle:
                detail = handle.read().strip()
            die(f"{tool} stand-in: failing on demand (marker {os.path.join(MARKER_DIR, name)} "
                f"present){': ' + detail if detail else ''}")


def write_file(path, text, mode=0o644):
    """Atomic write with the mode set before the content lands (keys are never world-readable)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_text(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def systemd_available():
    return not ROOT and os.path.isdir("/run/systemd/system") and shutil.which("systemctl")


def parse_duration(text, field="duration"):
    """Go durations as kubectl and kubeadm take them: 300s, 5m, 1h30m, 500ms, 0."""
    text = str(text).strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        die(f"error: invalid {field} {text!r}: use a duration such as 300s, 5m or 1h")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


# -- YAML: PyYAML (Debian's python3-yaml, the `python` layer of tests/labkit/rootfs.py) ----------
# Plain scalars resolve as the stand-ins have always read them: only true/false are booleans,
# 1e3 is a number, and yes, on, 12:30 or 2024-01-01 stay strings (YAML 1.1 would make them a
# boolean, a sexagesimal number and a date, which JSON cannot even hold).

class YamlError(ValueError):
    pass


class _YamlLoader(yaml.SafeLoader):
    pass


class _YamlDumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True  # never &id001 anchors: kubeconfigs and manifests are read by other tools


_YamlLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
        ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
        ("int", r"[-+]?0[0-7]+|[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F]+", "-+0123456789"),
        ("float", r"[-+]?(?:\.[0-9]+|[0-9][0-9_]*\.[0-9_]*)(?:[eE][-+]?[0-9]+)?"
                  r"|[-+]?[0-9]+[eE][-+]?[0-9]+|\+?\.inf|\.Inf|-\.inf|-\.Inf|\.nan|\.NaN",
         "-+.0123456789"),
        ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
        ("merge", r"<<", "<")):
    _resolver = re.compile(f"^(?:{_pattern})$")
    _YamlLoader.add_implicit_resolver("tag:yaml.org,2002:" + _tag, _resolver, list(_first))
    # The dumper quotes a string that either reading would take for something else.
    _YamlDumper.add_implicit_resolver("tag:yaml.org,2002:" + _tag, _resolver, list(_first))
del _tag, _pattern, _first, _resolver
# Multi-line text (certificates, ClusterConfiguration, scripts) is written as a literal block.
_YamlDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def _yaml_error(error):
    mark, problem = getattr(error, "problem_mark", None), getattr(error, "problem", None)
    if not problem:
        return YamlError(" ".join(str(error).split()))
    context = getattr(error, "context", None)
    return YamlError((f"line {mark.line + 1}, column {mark.column + 1}: " if mark else "")
                     + (f"{context}: " if context else "") + problem)


def yaml_load_all(text):
    """Every non-empty document of a YAML (or JSON) stream."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            value = json.loads(stripped)
            return value if isinstance(value, list) and stripped[0] == "[" \
                and all(isinstance(v, dict) for v in value) and value else [value]
        except ValueError:
            pass
    try:
        return [value for value in yaml.load_all(text, Loader=_YamlLoader) if value is not None]
    except yaml.YAMLError as error:
        raise _yaml_error(error) from None


def yaml_load(text):
    documents = yaml_load_all(text)
    return documents[0] if documents else None


def yaml_dump(value):
    return yaml.dump(value, Dumper=_YamlDumper, default_flow_style=False, sort_keys=False,
                     width=1 << 30)


def _yaml_plain(text):
    """What `text` reads as when it is a plain YAML scalar (kubectl's jsonpath filters)."""
    loader = _YamlLoader("")
    try:
        tag = loader.resolve(yaml.ScalarNode, text, (True, False))
        return loader.construct_object(yaml.ScalarNode(tag, text))
    finally:
        loader.dispose()


def _yaml_unquote(text):
    """The value of a quoted YAML scalar, escapes decoded (kubectl's jsonpath literals)."""
    try:
        return yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as error:
        raise _yaml_error(error) from None


# -- HTTPS to the API server stand-in -----------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _client_context(ca_pem=None, cert_pem=None, key_pem=None, insecure=False):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    else:
        context.load_default_certs()
    if cert_pem and key_pem:
        # ssl only loads client credentials from files: a private 0700 directory, removed at once.
        directory = tempfile.mkdtemp(prefix="standin-cred-")
        try:
            bundle = os.path.join(directory, "client.pem")
            fd = os.open(bundle, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(cert_pem.strip() + "\n" + key_pem.strip() + "\n")
            context.load_cert_chain(bundle)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return context


def split_server(server):
    match = re.fullmatch(r"(?:https://)?(\[[^\]]+\]|[^:/]+)(?::([0-9]+))?/?", server.strip())
    if not match:
        raise ApiError(0, f"invalid API server address {server!r}: use https://HOST:PORT")
    return match.group(1).strip("[]"), int(match.group(2) or 443)


def api_call(server, method, path, body=None, ca_pem=None, cert_pem=None, key_pem=None,
             token=None, insecure=False, timeout=10.0):
    """One JSON request; returns the decoded answer or raises ApiError (status 0: unreachable).
    The bearer token travels only in the Authorization header and is never echoed."""
    host, port = split_server(server)
    context = _client_context(ca_pem, cert_pem, key_pem, insecure)
    connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except ssl.SSLCertVerificationError as error:
        raise ApiError(0, f"tls: failed to verify certificate: {error.verify_message}") from None
    except (OSError, http.client.HTTPException) as error:
        raise ApiError(0, f"dial tcp {host}:{port}: {error}") from None
    finally:
        connection.close()
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {"message": raw.decode(errors="replace")}
    if response.status >= 400:
        message = answer.get("message") if isinstance(answer, dict) else None
        raise ApiError(response.status, message or response.reason)
    return answer


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _unb64(text):
    return base64.b64decode(text).decode()


def load_kubeconfig(path):
    """Server and credentials of the current context of a kubeconfig file."""
    try:
        config = yaml_load(read_text(path)) or {}
    except OSError as error:
        raise ApiError(0, f"cannot read kubeconfig {path}: {error.strerror}") from None
    except YamlError as error:
        raise ApiError(0, f"kubeconfig {path} is not valid YAML: {error}") from None

    def named(section, name):
        for entry in config.get(section) or []:
            if entry.get("name") == name:
                return entry
        raise ApiError(0, f"kubeconfig {path}: no {section[:-1]} named {name!r}")

    def data_or_file(block, key):
        if block.get(key + "-data"):
            return _unb64(block[key + "-data"])
        if block.get(key):
            return read_text(rooted(block[key]))
        return None

    current = config.get("current-context")
    if not current:
        raise ApiError(0, f"kubeconfig {path}: current-context is not set")
    context = named("contexts", current)["context"]
    cluster = named("clusters", context["cluster"])["cluster"]
    user = named("users", context["user"])["user"] if context.get("user") else {}
    return {
        "server": cluster["server"],
        "ca_pem": data_or_file(cluster, "certificate-authority"),
        "cert_pem": data_or_file(user, "client-certificate"),
        "key_pem": data_or_file(user, "client-key"),
        "token": user.get("token"),
        "insecure": bool(cluster.get("insecure-skip-tls-verify")),
    }


def kubeconfig_call(kubeconfig, method, path, body=None, timeout=10.0):
    return api_call(kubeconfig["server"], method, path, body, kubeconfig["ca_pem"],
                    kubeconfig["cert_pem"], kubeconfig["key_pem"], kubeconfig["token"],
                    kubeconfig["insecure"], timeout)


def make_kubeconfig(server, ca_pem, user, cert_pem, key_pem, cluster="kubernetes"):
    context = f"{user}@{cluster}"
    return yaml_dump({
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": _b64(ca_pem), "server": server},
                      "name": cluster}],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert_pem),
                                          "client-key-data": _b64(key_pem)}}],
    })


def openssl(*args, stdin=None):
    result = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")
    return result.stdout


def ca_cert_hash(ca_pem):
    """kubeadm's discovery hash: sha256 over the CA's SubjectPublicKeyInfo (DER)."""
    spki_pem = openssl("x509", "-noout", "-pubkey", stdin=ca_pem)
    body = "".join(line for line in spki_pem.splitlines() if not line.startswith("-----"))
    return "sha256:" + hashlib.sha256(base64.b64decode(body)).hexdigest()


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_detached(payload_text, token_id, token_secret):
    """The detached HS256 JWS the bootstrap signer puts in cluster-info for each signing token:
    a joining node proves the API server knows its token without the secret crossing the wire."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(payload_text.encode())}".encode()
    signature = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{_b64url(signature)}"


def version_tuple(version, field="version"):
    match = re.fullmatch(r"v?([0-9]+)\.([0-9]+)\.([0-9]+)(?:[-+].*)?", str(version).strip())
    if not match:
        die(f"error: {field} {version!r} is not a Kubernetes version such as v1.29.4")
    return tuple(int(part) for part in match.groups())


def json_merge_patch(target, patch):
    """RFC 7386, as `kubectl patch --type=merge` and the stand-ins' node updates use it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result
