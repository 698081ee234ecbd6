"""Downloads per second of a 1 MiB artifact from the node endpoint with 50 clients at once,
then the same while 200 silent TCP connections are held open; prints both and the ratio
(target >= 0.8).

    .venv/bin/python -m bench.endpoint_load [--clients 50] [--idle 200] [--seconds 5]

No lab and no root: the endpoint (EndpointServer with its default caps and timeouts) runs in
a process of its own on loopback with a throwaway CA, as it runs in salt-master's engine
process. Every client and every silent connection comes from a loopback address of its own
(127.0.1.x, 127.0.2.x), as nodes and attackers have their own, so the per-address cap does
not decide the result. The endpoint closes a silent connection after its handshake timeout;
the holder opens another at once, so 200 are held throughout.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import selectors
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

from kubesalt.master.endpoint import server as endpoint
from kubesalt.master.trust import pki

ARTIFACT = "/artifacts/agent/bench.bin"
SIZE = 1 << 20


def _serve(directory, ready):
    server = endpoint.EndpointServer(("127.0.0.1", 0), directory / "artifacts",
                                     directory / "endpoint.crt", directory / "endpoint.key")
    ready.put(server.server_address[1])
    server.serve_forever()


def _site(directory):
    ca = pki.ensure_ca(directory / "pki")
    cert, key = ca.issue_server_cert(["localhost"], ["127.0.0.1"], 1)
    (directory / "endpoint.crt").write_text(cert)
    (directory / "endpoint.key").write_text(key)
    (directory / "artifacts" / "agent").mkdir(parents=True)
    (directory / "artifacts" / "agent" / "bench.bin").write_bytes(os.urandom(SIZE))
    return ssl.create_default_context(cafile=str(directory / "pki" / "ca.crt"))


def _downloads(port, context, clients, seconds, warmup=1.0):
    """(downloads per second over `seconds` after `warmup`, failed downloads)."""
    finished, failures = [], []
    stop = threading.Event()

    def client(number):
        source = (f"127.0.1.{number + 1}", 0)
        while not stop.is_set():
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context,
                                               timeout=30, source_address=source)
            try:
                conn.request("GET", ARTIFACT)
                resp = conn.getresponse()
                if resp.status != 200 or len(resp.read()) != SIZE:
                    raise OSError(f"answered {resp.status}")
                finished.append(time.monotonic())
            except OSError as exc:
                failures.append(repr(exc))
            finally:
                conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(warmup + seconds)  # the measurement window itself
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    counted = [t for t in finished if start + warmup <= t <= start + warmup + seconds]
    return len(counted) / seconds, failures


class SilentConnections:
    """`count` TCP connections that never send a byte, each reopened once the endpoint
    closes it."""

    def __init__(self, port, count):
        self.port = port
        self.count = count
        self.reopened = 0
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _open(self, number):
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((f"127.0.2.{number + 1}", 0))
        sock.connect_ex(("127.0.0.1", self.port))
        self._selector.register(sock, selectors.EVENT_READ, number)
        return sock

    def _hold(self):
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.2):
                try:
                    if key.fileobj.recv(1):
                        continue
                except OSError:
                    pass
                self._selector.unregister(key.fileobj)
                key.fileobj.close()
                self.reopened += 1
                self._open(key.data)

    def __enter__(self):
        # Connected before the measurement starts (an endpoint that stops accepting leaves
        # some in its backlog's queue: `connected` says how many made it).
        connecting = selectors.DefaultSelector()
        for number in range(self.count):
            connecting.register(self._open(number), selectors.EVENT_WRITE)
        deadline = time.monotonic() + 10
        while connecting.get_map() and time.monotonic() < deadline:
            for key, _ in connecting.select(1.0):
                connecting.unregister(key.fileobj)
        self.connected = self.count - len(connecting.get_map())
        connecting.close()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()
        self._selector.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ks-endpoint-bench-") as tmp:
        directory = Path(tmp)
        context = _site(directory)
        spawn = multiprocessing.get_context("spawn")
        ready = spawn.Queue()
        server = spawn.Process(target=_serve, args=(directory, ready), daemon=True)
        server.start()
        try:
            port = ready.get(timeout=60)
            plain, plain_failures = _downloads(port, context, args.clients, args.seconds)
            with SilentConnections(port, args.idle) as silent:
                loaded, loaded_failures = _downloads(port, context, args.clients,
                                                     args.seconds)
                reopened, connected = silent.reopened, silent.connected
        finally:
            server.terminate()
            server.join(timeout=30)
    print(json.dumps({
        "clients": args.clients, "seconds": args.seconds, "artifact_bytes": SIZE,
        "downloads_per_s": round(plain, 1),
        f"with_{args.idle}_idle_per_s": round(loaded, 1),
        "ratio": round(loaded / plain, 2) if plain else None,
        "failed": len(plain_failures), "failed_with_idle": len(loaded_failures),
        "idle_connected": connected, "idle_closed_by_endpoint": reopened,
        "first_failures": (plain_failures + loaded_failures)[:3],
    }))


if __name__ == "__main__":
    main()
