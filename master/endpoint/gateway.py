"""The agent gateway: the controller's agent traffic (Salt's publish and return ports, the
HTTPS endpoint) behind one TLS port, for nodes behind an HTTP proxy or allowed one outbound
port.

Each connection is TLS with the endpoint's certificate (from the controller CA, the one the
node's tunnel verifies against), then one preface line (`minion_bootstrap.tunnel.preface`)
names the channel and the node; the gateway connects to that channel's local port and relays
bytes. What flows inside is unchanged: ZeroMQ with Salt's own encryption and the pinned
master key, or the endpoint's own TLS. The node ids of live publish channels are written to a
file, because Salt tells a connected minion by the address its connection comes from, and
through the gateway every connection comes from the gateway.
"""

import json
import logging
import os
import socket
import ssl
import threading

from kubesalt.minion_bootstrap import tunnel

log = logging.getLogger(__name__)
PREFACE_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024


class Gateway:
    """`targets` maps each channel to the (host, port) it reaches on the controller;
    `presence_file` (optional) gets the JSON list of node ids with a live publish channel."""

    def __init__(self, address, cert_file, key_file, targets, presence_file=None,
                 max_connections=MAX_CONNECTIONS):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(str(cert_file), str(key_file))
        self.targets = dict(targets)
        self.presence_file = presence_file
        self.sock = socket.create_server(address)
        self.address = self.sock.getsockname()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._publishing = {}
        self._write_presence()

    def serve_forever(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def close(self):
        # shutdown() first: close() alone leaves a thread blocked in accept() holding the
        # listening socket open.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def _serve(self, conn, peer):
        try:
            self._relay(conn, peer)
        finally:
            self._slots.release()

    def _relay(self, conn, peer):
        conn.settimeout(PREFACE_TIMEOUT)
        tls = None
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
            channel, node_id = tunnel.parse_preface(_read_line(tls))
            upstream = socket.create_connection(self.targets[channel], timeout=PREFACE_TIMEOUT)
        except (OSError, ValueError, KeyError) as exc:
            log.info("agent gateway: connection from %s closed: %s", peer[0], exc)
            (tls or conn).close()
            return
        tls.settimeout(None)
        upstream.settimeout(None)
        if channel == "publish":
            self._count(node_id, +1)
        try:
            tunnel.pump(tls, upstream)
        finally:
            if channel == "publish":
                self._count(node_id, -1)

    def _count(self, node_id, change):
        with self._lock:
            live = self._publishing.get(node_id, 0) + change
            if live > 0:
                self._publishing[node_id] = live
            else:
                self._publishing.pop(node_id, None)
            self._write_presence()

    def _write_presence(self):
        if self.presence_file is None:
            return
        os.makedirs(os.path.dirname(str(self.presence_file)), exist_ok=True)
        temporary = "%s.tmp" % self.presence_file
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(sorted(self._publishing), handle)
        os.replace(temporary, self.presence_file)


def _read_line(tls):
    """The preface, read a byte at a time: what follows it belongs to the relayed stream."""
    line = b""
    while not line.endswith(b"\n"):
        byte = tls.recv(1)
        if not byte or len(line) >= tunnel.MAX_PREFACE:
            raise ValueError("no preface")
        line += byte
    return line


def connected(presence_file):
    """The node ids with a live publish channel through the gateway (empty when it is off)."""
    try:
        with open(presence_file, encoding="utf-8") as handle:
            ids = json.load(handle)
    except (OSError, ValueError):
        return set()
    return {i for i in ids if isinstance(i, str)} if isinstance(ids, list) else set()
