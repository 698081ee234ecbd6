"""The controller's HTTPS endpoint for nodes that have no agent yet.

Read-only downloads from the artifact store (the node-agent bundle, later Kubernetes
artifacts) and the enrollment call conjurer makes. Its certificate comes from the controller CA
that the installer credentials carry, so nodes trust nothing else. It runs inside the
salt-master as the `kubesalt_endpoint` engine, so it starts and stops with the master.
"""

import http.server
import json
import logging
import ssl
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
ARTIFACT_PREFIX = "/artifacts/"  # serves Layout.artifacts_dir


class EndpointServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # Several nodes download at once; the default backlog of 5 refuses some under load.
    request_queue_size = 128

    def __init__(self, address, artifacts_dir, cert_file, key_file, enroll=None, check=None):
        super().__init__(address, _Handler)
        self.artifacts_dir = Path(artifacts_dir).resolve()
        # POST handlers: (payload, client address) -> (HTTP code, JSON answer)
        self.posts = {path: handler for path, handler in (("/v1/enroll", enroll),
                                                          ("/v1/installer/check", check))
                      if handler is not None}
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(cert_file), str(key_file))
        self.socket = context.wrap_socket(self.socket, server_side=True)

    def start_background(self):
        thread = threading.Thread(target=self.serve_forever, name="kubesalt-endpoint",
                                  daemon=True)
        thread.start()
        return thread


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "kubesalt-endpoint"
    sys_version = ""

    def log_message(self, fmt, *args):
        # Requests are logged without bodies: enrollment carries signatures, never secrets,
        # but nothing here needs to be in the log beyond the line.
        log.info("%s %s", self.address_string(), fmt % args)

    def _send_json(self, code, payload):
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _artifact_path(self):
        path = unquote(urlsplit(self.path).path)
        if not path.startswith(ARTIFACT_PREFIX):
            return None
        root = self.server.artifacts_dir
        candidate = (root / path[len(ARTIFACT_PREFIX):]).resolve()
        if root not in candidate.parents or not candidate.is_file():
            return None
        return candidate

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self.do_GET(head_only=True)

    def do_GET(self, head_only=False):  # noqa: N802
        path = self._artifact_path()
        if path is None:
            self._send_json(404, {"error": "not found"})
            return
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if head_only:
            return
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                self.wfile.write(chunk)

    def do_POST(self):  # noqa: N802
        handler = self.server.posts.get(urlsplit(self.path).path)
        if handler is None:
            self._send_json(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._send_json(400, {"error": "body must be JSON of at most 64 KiB"})
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self._send_json(400, {"error": "body is not JSON"})
            return
        code, answer = handler(payload, self.client_address[0])
        self._send_json(code, answer)
