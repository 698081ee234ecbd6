"""The controller's HTTPS endpoint for nodes that have no agent yet.

Read-only downloads from the artifact store (the node-agent bundle, later Kubernetes
artifacts) and the enrollment call conjurer makes. Its certificate comes from the controller CA
that the installer credentials carry, so nodes trust nothing else. It runs inside the
salt-master as the `kubesalt_endpoint` engine, so it starts and stops with the master.

The endpoint is reachable before anything about a client is known, so no client may hold it:

- One thread accepts connections and drives their TLS handshakes without blocking (a
  selector), because a handshake waits for the client: done in the accept loop a silent
  connection stopped every other one, and done in a thread each, a few hundred silent
  connections would be a few hundred threads. A connection that has not finished its
  handshake within `handshake_timeout` is closed. Only a connection that has finished it gets
  a thread, and then has `read_timeout` to send its whole request and `write_timeout` per
  64 KiB of answer to read it.
- Each client address may hold `max_per_address` connections, all addresses together
  `max_connections`; these bound the threads and descriptors a client can tie up. When a new
  connection finds its address (or the whole endpoint) at the cap, the oldest connection that
  has still not finished its handshake is closed to make room, and only if there is none is
  the new one refused: a live client finishes its handshake within milliseconds, so the
  oldest unfinished one is the one most likely silent, and refusing newcomers instead would
  let whoever filled the slots first keep out everyone behind the same address until the
  timeout. The default of 32 per address leaves room for every node behind one NAT address
  downloading at once in the usual case; raise it (engine option) for larger NATed sites.
- A request the endpoint cannot read (a NUL in the path, a body nested too deeply or not
  JSON) is answered 400 with the reason; anything unexpected in a handler goes to the
  master's log and is answered 500, never as a traceback on stderr or to the client.
"""

import http.server
import io
import json
import logging
import re
import selectors
import socket
import ssl
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
# An enrollment body is two levels deep; a deep body only costs recursion.
MAX_JSON_DEPTH = 16
ARTIFACT_PREFIX = "/artifacts/"  # serves Layout.artifacts_dir

MAX_PER_ADDRESS = 32
MAX_CONNECTIONS = 256
HANDSHAKE_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
WRITE_TIMEOUT = 30.0
WRITE_CHUNK = 64 * 1024
# Accepting a burst in one go keeps the listen backlog short; the cap keeps pending
# handshakes from waiting behind a flood of new connections.
_ACCEPT_BATCH = 64
# After accept() fails for lack of descriptors, the listener rests so the loop does not spin.
_ACCEPT_PAUSE = 0.5
# Under a flood every connection would be a log line; the master log gets a summary instead.
_PRESSURE_REPORT_INTERVAL = 60.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LISTENER, _WAKE = object(), object()


class EndpointServer(http.server.HTTPServer):
    # Several nodes download at once; the default backlog of 5 refuses some under load.
    request_queue_size = 128

    def __init__(self, address, artifacts_dir, cert_file, key_file, enroll=None, check=None,
                 max_per_address=MAX_PER_ADDRESS, max_connections=MAX_CONNECTIONS,
                 handshake_timeout=HANDSHAKE_TIMEOUT, read_timeout=READ_TIMEOUT,
                 write_timeout=WRITE_TIMEOUT):
        super().__init__(address, _Handler)
        self.artifacts_dir = Path(artifacts_dir).resolve()
        # POST handlers: (payload, client address) -> (HTTP code, JSON answer)
        self.posts = {path: handler for path, handler in (("/v1/enroll", enroll),
                                                          ("/v1/installer/check", check))
                      if handler is not None}
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        # Client-initiated renegotiation makes the server redo handshake work on demand.
        self.context.options |= ssl.OP_NO_RENEGOTIATION
        self.context.load_cert_chain(str(cert_file), str(key_file))
        self.max_per_address = int(max_per_address)
        self.max_connections = int(max_connections)
        self.handshake_timeout = float(handshake_timeout)
        self.read_timeout = float(read_timeout)
        self.write_timeout = float(write_timeout)
        self.socket.setblocking(False)
        # Slots: open connections per client address, pending or served. The loop thread takes
        # them, whichever thread closes a connection gives its slot back.
        self._lock = threading.Lock()
        self._open = {}
        self._total = 0
        # Connections still in their handshake, oldest first: {SSLSocket: (client, deadline)}.
        # Only the loop thread touches it.
        self._pending = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = False
        self._stopped = threading.Event()
        self._stopped.set()
        self._paused_until = None
        self.stats = {"accepted": 0, "refused": 0, "evicted": 0, "timed_out": 0}
        self._reported_at = -_PRESSURE_REPORT_INTERVAL

    def open_connections(self):
        """How many connections are open now, in their handshake or being served."""
        with self._lock:
            return self._total

    # ---- the loop: accept and handshake --------------------------------------------------

    def serve_forever(self, poll_interval=0.5):
        self._stopped.clear()
        selector = selectors.DefaultSelector()
        try:
            selector.register(self.socket, selectors.EVENT_READ, _LISTENER)
            selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
            while not self._stop:
                for key, _events in selector.select(self._next_timeout(poll_interval)):
                    if key.data is _LISTENER:
                        self._accept(selector)
                    elif key.data is _WAKE:
                        self._wake_r.recv(4096)
                    else:
                        self._handshake(selector, key.fileobj)
                self._expire(selector)
                self._resume_accepting(selector)
        finally:
            for sock in list(self._pending):
                self._drop(selector, sock)
            selector.close()
            self._stop = False
            self._stopped.set()

    def shutdown(self):
        self._stop = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._stopped.wait()

    def server_close(self):
        super().server_close()
        for sock in (self._wake_r, self._wake_w):
            sock.close()

    def _next_timeout(self, poll_interval):
        timeout = poll_interval
        now = time.monotonic()
        if self._pending:
            first_deadline = next(iter(self._pending.values()))[1]
            timeout = min(timeout, first_deadline - now)
        if self._paused_until is not None:
            timeout = min(timeout, self._paused_until - now)
        return max(timeout, 0.0)

    def _accept(self, selector):
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, client = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors (EMFILE/ENFILE): the backlog keeps the connection until a
                # slot frees; meanwhile a readable listener would make the loop spin.
                log.warning("kubesalt endpoint cannot accept connections (%s); pausing", exc)
                selector.unregister(self.socket)
                self._paused_until = time.monotonic() + _ACCEPT_PAUSE
                return
            self.stats["accepted"] += 1
            if not self._take_slot(selector, client[0]):
                self.stats["refused"] += 1
                _close(sock)
                self._report_pressure()
                continue
            try:
                sock.setblocking(False)
                tls = self.context.wrap_socket(sock, server_side=True,
                                               do_handshake_on_connect=False)
            except (OSError, ValueError) as exc:
                log.debug("endpoint: connection from %s lost before its handshake: %s",
                          client[0], exc)
                _close(sock)
                self._release(client[0])
                continue
            self._pending[tls] = (client, time.monotonic() + self.handshake_timeout)
            selector.register(tls, selectors.EVENT_READ, client)

    def _resume_accepting(self, selector):
        if self._paused_until is not None and time.monotonic() >= self._paused_until:
            self._paused_until = None
            selector.register(self.socket, selectors.EVENT_READ, _LISTENER)

    def _take_slot(self, selector, address):
        while True:
            with self._lock:
                per_address = self._open.get(address, 0)
                if per_address < self.max_per_address and self._total < self.max_connections:
                    self._open[address] = per_address + 1
                    self._total += 1
                    return True
                crowded = address if per_address >= self.max_per_address else None
            victim = next((sock for sock, (client, _) in self._pending.items()
                           if crowded is None or client[0] == crowded), None)
            if victim is None:
                return False
            self.stats["evicted"] += 1
            self._drop(selector, victim)
            self._report_pressure()

    def _report_pressure(self):
        now = time.monotonic()
        if now - self._reported_at >= _PRESSURE_REPORT_INTERVAL:
            self._reported_at = now
            log.warning("kubesalt endpoint at its connection caps (%d per address, %d in all): "
                        "%d connections refused and %d silent ones closed to make room since "
                        "it started", self.max_per_address, self.max_connections,
                        self.stats["refused"], self.stats["evicted"])

    def _release(self, address):
        with self._lock:
            self._total -= 1
            left = self._open[address] - 1
            if left:
                self._open[address] = left
            else:
                del self._open[address]

    def _drop(self, selector, sock):
        client, _ = self._pending.pop(sock)
        selector.unregister(sock)
        _close(sock)
        self._release(client[0])

    def _expire(self, selector):
        now = time.monotonic()
        while self._pending:
            sock, (client, deadline) = next(iter(self._pending.items()))
            if deadline > now:
                return
            log.debug("endpoint: %s did not finish its TLS handshake in %ss; closed",
                      client[0], self.handshake_timeout)
            self.stats["timed_out"] += 1
            self._drop(selector, sock)

    def _handshake(self, selector, sock):
        if sock not in self._pending:  # closed to make room earlier in this round
            return
        client = self._pending[sock][0]
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            selector.modify(sock, selectors.EVENT_READ, client)
            return
        except ssl.SSLWantWriteError:
            selector.modify(sock, selectors.EVENT_WRITE, client)
            return
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.debug("endpoint: TLS handshake with %s failed: %s", client[0], exc)
            self._drop(selector, sock)
            return
        del self._pending[sock]
        selector.unregister(sock)
        try:
            threading.Thread(target=self._serve, args=(sock, client), daemon=True,
                             name="kubesalt-endpoint-conn").start()
        except RuntimeError as exc:  # no more threads
            log.warning("endpoint: cannot serve %s: %s", client[0], exc)
            _close(sock)
            self._release(client[0])

    # ---- a connection's own thread ---------------------------------------------------------

    def _serve(self, sock, client):
        try:
            self.finish_request(sock, client)
        except OSError as exc:
            log.debug("endpoint: connection from %s ended: %s", client[0], exc)
        except Exception:
            log.exception("endpoint: connection from %s failed", client[0])
        finally:
            _close(sock)
            self._release(client[0])

    def handle_error(self, request, client_address):
        log.exception("endpoint: request from %s failed", client_address[0])


def _close(sock):
    try:
        sock.close()
    except OSError:
        pass


class _DeadlineReader(io.RawIOBase):
    """The connection as the handler reads it: every read ends by the handler's deadline, so a
    client that trickles its request a byte at a time cannot keep a thread beyond it."""

    def __init__(self, handler):
        super().__init__()
        self._handler = handler

    def readable(self):
        return True

    def readinto(self, buffer):
        remaining = self._handler.read_deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request was not received in time")
        self._handler.connection.settimeout(remaining)
        return self._handler.connection.recv_into(buffer)


class _TimedWriter(io.BufferedIOBase):
    """The connection as the handler writes it. sendall's timeout bounds the whole call, so a
    large write to a slow but steady reader would time out; per chunk it bounds a stall."""

    def __init__(self, sock, timeout):
        super().__init__()
        self._sock = sock
        self._timeout = timeout

    def writable(self):
        return True

    def write(self, data):
        self._sock.settimeout(self._timeout)
        with memoryview(data) as view, view.cast("B") as raw:
            for start in range(0, len(raw), WRITE_CHUNK):
                self._sock.sendall(raw[start:start + WRITE_CHUNK])
            return len(raw)


class _BadRequest(Exception):
    def __init__(self, message, reason="malformed"):
        super().__init__(message)
        self.reason = reason


def _load_json(body):
    try:
        payload = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise _BadRequest(f"the body is nested more than {MAX_JSON_DEPTH} levels deep") \
            from None
    except ValueError:
        raise _BadRequest("the body is not JSON") from None
    stack = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _BadRequest(f"the body is nested more than {MAX_JSON_DEPTH} levels deep")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return payload


def _refuse_constant(name):
    # NaN and Infinity are not JSON; Python's parser accepts them unless told otherwise.
    raise ValueError(f"{name} is not JSON")


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "kubesalt-endpoint"
    sys_version = ""

    def setup(self):
        self.connection = self.request
        self.read_deadline = time.monotonic() + self.server.read_timeout
        self._responding = False
        self.rfile = io.BufferedReader(_DeadlineReader(self))
        self.wfile = _TimedWriter(self.connection, self.server.write_timeout)

    def handle_one_request(self):
        self.read_deadline = time.monotonic() + self.server.read_timeout
        self._responding = False
        super().handle_one_request()

    def log_message(self, fmt, *args):
        # Requests are logged without bodies: enrollment carries signatures, never secrets,
        # but nothing here needs to be in the log beyond the line.
        log.info("%s %s", self.address_string(), fmt % args)

    def send_response(self, code, message=None):
        self._responding = True
        super().send_response(code, message)

    def send_error(self, code, message=None, explain=None):
        """http.server's own refusals (bad request line, headers too long) as JSON too."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        self._send_json(code, {"error": message or self.responses.get(code, ("error",))[0]})

    def _send_json(self, code, payload):
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _guarded(self, action):
        try:
            action()
        except _BadRequest as exc:
            self._send_json(400, {"error": str(exc), "reason": exc.reason})
        except (ConnectionError, TimeoutError, ssl.SSLError):
            raise  # the client left or stalled: there is no one to answer
        except Exception:
            log.exception("endpoint: %s %r from %s failed", self.command, self.path[:200],
                          self.client_address[0])
            self.close_connection = True
            if not self._responding:
                self._send_json(500, {"error": "internal error; the controller's log has "
                                               "the details", "reason": "internal"})

    def _path(self):
        path = unquote(urlsplit(self.path).path)
        # No artifact or call has a control character in its name, and a NUL makes the file
        # system calls raise.
        if _CONTROL.search(self.path) or _CONTROL.search(path):
            raise _BadRequest("the path holds a NUL or another control character", "bad-path")
        return path

    def _artifact_path(self):
        path = self._path()
        if not path.startswith(ARTIFACT_PREFIX):
            return None
        root = self.server.artifacts_dir
        try:
            candidate = (root / path[len(ARTIFACT_PREFIX):]).resolve()
            if root not in candidate.parents or not candidate.is_file():
                return None
        except (OSError, ValueError):  # e.g. a name too long for the file system
            return None
        return candidate

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._guarded(self._get)

    def do_GET(self):  # noqa: N802
        self._guarded(self._get)

    def do_POST(self):  # noqa: N802
        self._guarded(self._post)

    def _get(self):
        path = self._artifact_path()
        if path is None:
            self._send_json(404, {"error": "not found"})
            return
        with open(path, "rb") as handle:
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command == "HEAD":
                return
            while chunk := handle.read(1 << 20):
                self.wfile.write(chunk)

    def _post(self):
        self._path()
        handler = self.server.posts.get(urlsplit(self.path).path)
        if handler is None:
            self._send_json(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self.close_connection = True
            self._send_json(400, {"error": "body must be JSON of at most 64 KiB",
                                  "reason": "malformed"})
            return
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            self._send_json(408, {"error": "the request body was not received in time",
                                  "reason": "timeout"})
            return
        if len(body) < length:
            self.close_connection = True  # the client closed its side early: no one to answer
            return
        code, answer = handler(_load_json(body), self.client_address[0])
        self._send_json(code, answer)
