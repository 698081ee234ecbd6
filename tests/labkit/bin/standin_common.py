"""Code shared by the kubeadm, kubelet and kubectl lab stand-ins (tests/labkit/bin): paths
re-rooted for the host unit tests, failure markers, atomic writes, durations, YAML, HTTPS to the
API server stand-in, kubeconfigs, openssl, bootstrap-token signatures, versions, merge patches.

It is not a module the stand-ins import. Each stand-in has a marked region that, run from the
source tree, executes this file into the stand-in's own globals, so the two read as one file;
tests/labkit/artifacts.py pastes this file over that region when it builds the artifact, so a
node gets one self-contained stand-in, installed like the real binary. Python 3.11 stdlib.
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
    of the subcommand words (fail-kubeadm-upgrade also fails `kubeadm upgrade apply`)."""
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


# -- YAML: the subset Kubernetes manifests and kubeadm configurations use -----------------------
# Block mappings and sequences, plain/quoted/multi-line scalars, literal and folded block
# scalars, flow collections, several documents. No anchors or aliases (they say so).

class YamlError(ValueError):
    pass


_NULLS = ("", "~", "null", "Null", "NULL")


def _yaml_plain(text):
    if text in _NULLS:
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if re.fullmatch(r"[-+]?0[0-7]+", text):
        return int(text.replace("0", "", 1) if text[0] == "0" else text, 8)
    if re.fullmatch(r"[-+]?(0|[1-9][0-9_]*)", text):
        return int(text.replace("_", ""))
    if re.fullmatch(r"0x[0-9a-fA-F]+", text):
        return int(text, 16)
    if re.fullmatch(r"[-+]?(\.[0-9]+|[0-9][0-9_]*\.[0-9_]*)([eE][-+]?[0-9]+)?", text):
        return float(text.replace("_", ""))
    if re.fullmatch(r"[-+]?[0-9]+[eE][-+]?[0-9]+", text):
        return float(text)
    if text in (".inf", ".Inf", "+.inf"):
        return float("inf")
    if text in ("-.inf", "-.Inf"):
        return float("-inf")
    if text in (".nan", ".NaN"):
        return float("nan")
    return text


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\", "/": "/",
            " ": " ", "e": "\x1b", "b": "\b", "a": "\a", "f": "\f", "v": "\v"}


def _yaml_quoted_end(text, start):
    """Index just after the quoted scalar starting at text[start], or None when unterminated."""
    quote = text[start]
    i = start + 1
    while i < len(text):
        ch = text[i]
        if quote == '"' and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if quote == "'" and i + 1 < len(text) and text[i + 1] == "'":
                i += 2
                continue
            return i + 1
        i += 1
    return None


def _yaml_unquote(text):
    if text[0] == "'":
        return text[1:-1].replace("''", "'")
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            out.append(chr(int(body[i + 2:i + 2 + width], 16)))
            i += 2 + width
        else:
            raise YamlError(f"unknown escape \\{nxt} in {text!r}")
    return "".join(out)


def _yaml_fold_quoted(text):
    # Line breaks inside a multi-line quoted scalar fold to spaces; they arrive joined by " ".
    return _yaml_unquote(text)


def _yaml_scalar(text, line):
    text = text.strip()
    if text.startswith("!!str "):
        value = _yaml_scalar(text[6:], line)
        return value if isinstance(value, str) or value is None else str(text[6:].strip())
    if text[:1] in ("&", "*") and len(text) > 1 and (text[1].isalnum() or text[1] in "_-"):
        raise YamlError(f"line {line}: anchors and aliases are not supported by the stand-in")
    if text[:1] in ("'", '"'):
        end = _yaml_quoted_end(text, 0)
        if end != len(text):
            raise YamlError(f"line {line}: unexpected text after quoted scalar: {text!r}")
        return _yaml_fold_quoted(text)
    if text[:1] in ("[", "{"):
        value, pos = _yaml_flow(text, 0, line)
        if text[pos:].strip():
            raise YamlError(f"line {line}: unexpected text after flow collection: {text!r}")
        return value
    return _yaml_plain(text)


def _yaml_flow(text, pos, line):
    while pos < len(text) and text[pos] == " ":
        pos += 1
    if pos >= len(text):
        raise YamlError(f"line {line}: unterminated flow collection")
    ch = text[pos]
    if ch in "[{":
        close = "]" if ch == "[" else "}"
        items = [] if ch == "[" else {}
        pos += 1
        while True:
            while pos < len(text) and text[pos] in " ,":
                pos += 1
            if pos >= len(text):
                raise YamlError(f"line {line}: unterminated flow collection")
            if text[pos] == close:
                return items, pos + 1
            if ch == "[":
                value, pos = _yaml_flow(text, pos, line)
                items.append(value)
            else:
                key, pos = _yaml_flow(text, pos, line)
                while pos < len(text) and text[pos] == " ":
                    pos += 1
                if pos < len(text) and text[pos] == ":":
                    value, pos = _yaml_flow(text, pos + 1, line)
                else:
                    value = None
                items[key] = value
    if ch in "'\"":
        end = _yaml_quoted_end(text, pos)
        if end is None:
            raise YamlError(f"line {line}: unterminated quoted scalar")
        return _yaml_unquote(text[pos:end]), end
    end = pos
    while end < len(text):
        if text[end] in ",]}":
            break
        if text[end] == ":" and (end + 1 == len(text) or text[end + 1] in " ,]}"):
            break
        end += 1
    return _yaml_plain(text[pos:end].strip()), end


def _yaml_strip_comment(line):
    i, quote = 0, None
    while i < len(line):
        ch = line[i]
        if quote:
            if quote == '"' and ch == "\\":
                i += 2
                continue
            if ch == quote:
                if quote == "'" and line[i + 1:i + 2] == "'":
                    i += 2
                    continue
                quote = None
        elif ch in "'\"":
            before = line[:i].rstrip()
            if not before or before[-1] in "[{," or (before[-1] in ":-" and line[i - 1] == " "):
                quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
        i += 1
    return line.rstrip()


class _YamlParser:
    def __init__(self, raw_lines, first_line):
        self.first = first_line
        self.items = []
        for raw in raw_lines:
            text = _yaml_strip_comment(raw)
            body = text.lstrip(" ")
            if body.startswith("\t"):
                raise YamlError(f"line {first_line + len(self.items)}: tabs cannot indent YAML")
            self.items.append([len(text) - len(body), body, raw])
        self.pos = 0

    def line(self):
        return self.first + self.pos

    def skip_blank(self):
        while self.pos < len(self.items) and not self.items[self.pos][1]:
            self.pos += 1

    def parse(self):
        self.skip_blank()
        if self.pos >= len(self.items):
            return None
        value = self.block(self.items[self.pos][0])
        self.skip_blank()
        if self.pos < len(self.items):
            raise YamlError(f"line {self.line()}: unexpected indentation or content: "
                            f"{self.items[self.pos][1]!r}")
        return value

    @staticmethod
    def is_item(text):
        return text == "-" or text.startswith("- ")

    @staticmethod
    def key_split(text):
        if text[0] in "'\"":
            end = _yaml_quoted_end(text, 0)
            if end is None:
                return None
            rest = text[end:].lstrip(" ")
            if rest.startswith(":") and (len(rest) == 1 or rest[1] == " "):
                return _yaml_unquote(text[:end]), rest[1:].strip()
            return None
        if text[0] in "[{":
            return None
        match = re.search(r":( |$)", text)
        if not match:
            return None
        return text[:match.start()].rstrip(), text[match.end():].strip()

    def block(self, indent):
        text = self.items[self.pos][1]
        if self.is_item(text):
            return self.sequence(indent)
        if self.key_split(text) is not None:
            return self.mapping(indent)
        self.pos += 1
        return self.scalar(indent - 1, text)

    def mapping(self, indent):
        result = {}
        while True:
            self.skip_blank()
            if self.pos >= len(self.items):
                return result
            ind, text, _ = self.items[self.pos]
            if ind < indent or (ind == indent and self.is_item(text)):
                return result
            if ind > indent:
                raise YamlError(f"line {self.line()}: bad indentation of a mapping entry")
            split = self.key_split(text)
            if split is None:
                raise YamlError(f"line {self.line()}: expected 'key: value', found {text!r}")
            key, rest = split
            if key == "<<":
                raise YamlError(f"line {self.line()}: merge keys are not supported by the stand-in")
            self.pos += 1
            result[_yaml_plain(key) if key.isdigit() else key] = self.value(indent, rest, True)

    def sequence(self, indent):
        result = []
        while True:
            self.skip_blank()
            if self.pos >= len(self.items):
                return result
            ind, text, raw = self.items[self.pos]
            if ind != indent or not self.is_item(text):
                if ind > indent:
                    raise YamlError(f"line {self.line()}: bad indentation of a sequence entry")
                return result
            rest = text[1:].lstrip(" ")
            if rest and (self.is_item(rest) or self.key_split(rest) is not None):
                # "- key: value" opens a mapping whose column is that of "key".
                column = ind + len(text) - len(rest)
                self.items[self.pos] = [column, rest, raw]
                result.append(self.block(column))
            else:
                self.pos += 1
                result.append(self.value(indent, rest, False))

    def value(self, indent, rest, in_mapping):
        if rest.startswith("!!str "):
            rest = rest[6:].lstrip()
            if not rest or rest[0] in "|>":
                return self.value(indent, rest, in_mapping)
            return str(self.scalar(indent, rest) if rest[0] in "'\"" else rest)
        if not rest:
            self.skip_blank()
            if self.pos < len(self.items):
                ind, text, _ = self.items[self.pos]
                if ind > indent:
                    return self.block(ind)
                if in_mapping and ind == indent and self.is_item(text):
                    return self.sequence(ind)
            return None
        if rest[0] in "|>":
            return self.block_scalar(indent, rest)
        return self.scalar(indent, rest)

    def scalar(self, indent, text):
        """A scalar starting with `text`, continued on following lines indented past `indent`."""
        start = self.line() - 1
        parts = [text]
        if text[0] in "[{":
            while True:
                try:
                    return _yaml_scalar(" ".join(parts), start)
                except YamlError:
                    self.skip_blank()
                    if self.pos >= len(self.items) or self.items[self.pos][0] <= indent:
                        raise
                    parts.append(self.items[self.pos][1])
                    self.pos += 1
        while True:
            save, blanks = self.pos, 0
            while self.pos < len(self.items) and not self.items[self.pos][2].strip():
                self.pos += 1
                blanks += 1
            if self.pos < len(self.items) and self.items[self.pos][0] > indent \
                    and self.items[self.pos][1]:
                parts.append("\n" * blanks if blanks else " ")
                parts.append(self.items[self.pos][2].strip())
                self.pos += 1
            else:
                self.pos = save
                break
        return _yaml_scalar("".join(parts), start)

    def block_scalar(self, indent, header):
        match = re.fullmatch(r"([|>])([-+]?)([1-9]?)([-+]?)", header.split(" #")[0].strip())
        if not match:
            raise YamlError(f"line {self.line() - 1}: bad block scalar header {header!r}")
        style, chomp = match.group(1), match.group(2) or match.group(4)
        lines, content_indent = [], int(match.group(3)) + indent if match.group(3) else None
        while self.pos < len(self.items):
            raw = self.items[self.pos][2].rstrip("\n")
            if not raw.strip():
                lines.append("")
                self.pos += 1
                continue
            ind = len(raw) - len(raw.lstrip(" "))
            if content_indent is None:
                content_indent = ind
            if ind < content_indent or ind <= indent:
                break
            lines.append(raw[content_indent:])
            self.pos += 1
        trailing = 0
        while lines and lines[-1] == "":
            lines.pop()
            trailing += 1
        if style == "|":
            body = "\n".join(lines)
        else:
            body, previous = "", None
            for current in lines:
                if previous is None:
                    body = current
                elif current == "":
                    body += "\n"
                elif previous == "":
                    body += current
                elif current[:1] == " " or previous[:1] == " ":
                    body += "\n" + current
                else:
                    body += " " + current
                previous = current
        if not lines:
            return "" if chomp != "+" else "\n" * trailing
        if chomp == "-":
            return body
        if chomp == "+":
            return body + "\n" + "\n" * trailing
        return body + "\n"


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
    documents, current, first = [], [], 1
    for number, raw in enumerate(text.splitlines(), 1):
        if re.match(r"^---(\s|$)", raw) or re.match(r"^\.\.\.\s*$", raw):
            documents.append((first, current))
            current, first = [], number + 1
            if raw.startswith("---") and raw[3:].strip() and not raw[3:].strip().startswith("#"):
                current.append(raw[3:].strip())
                first = number
            continue
        if not current and raw.startswith("%"):
            continue
        current.append(raw)
    documents.append((first, current))
    values = (_YamlParser(lines, first).parse() for first, lines in documents)
    return [value for value in values if value is not None]


def yaml_load(text):
    documents = yaml_load_all(text)
    return documents[0] if documents else None


def _yaml_needs_quotes(text):
    if text == "" or text != text.strip() or not isinstance(_yaml_plain(text), str):
        return True
    if text[0] in "!&*?[]{},#|>@`\"'%:" or (text[0] == "-" and (len(text) == 1 or text[1] == " ")):
        return True
    if ": " in text or " #" in text or text.endswith(":") or "\t" in text:
        return True
    return any(ord(ch) < 32 for ch in text) or text in ("yes", "no", "on", "off", "y", "n")


def _yaml_inline(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    text = str(value)
    return json.dumps(text) if _yaml_needs_quotes(text) else text


def _yaml_emit(value, indent, out):
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            key = _yaml_inline(str(key))
            if isinstance(item, dict) and item:
                out.append(f"{pad}{key}:")
                _yaml_emit(item, indent + 2, out)
            elif isinstance(item, list) and item:
                out.append(f"{pad}{key}:")
                _yaml_emit(item, indent, out)
            elif isinstance(item, str) and "\n" in item and not item[:1].isspace():
                body = item.rstrip("\n")
                trailing = len(item) - len(body)
                out.append(f"{pad}{key}: |" + {0: "-", 1: ""}.get(trailing, "+"))
                lines = body.split("\n") + [""] * (trailing - 1 if trailing > 1 else 0)
                out.extend(f"{pad}  {line}" if line else "" for line in lines)
            else:
                out.append(f"{pad}{key}: {_yaml_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = []
                _yaml_emit(item, indent + 2, nested)
                out.append(pad + "- " + nested[0][indent + 2:])
                out.extend(nested[1:])
            elif isinstance(item, str) and "\n" in item:
                out.append(pad + "- " + json.dumps(item))
            else:
                out.append(pad + "- " + _yaml_inline(item))
    else:
        out.append(pad + (json.dumps(value) if isinstance(value, str) and "\n" in value
                          else _yaml_inline(value)))


def yaml_dump(value):
    out = []
    _yaml_emit(value, 0, out)
    return "\n".join(out) + "\n"


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
