"""Real servers on loopback for tests that talk to them: a server object's `serve_forever` on
a thread (the node endpoint, the agent gateway), or a bare TCP listener that hands each
connection to a function (echo and TLS stand-ins for what a tunnel or proxy reaches)."""
import socket
import threading


def serve_in_background(server):
    """Start `server.serve_forever` on a daemon thread and return the thread."""
    thread = threading.Thread(target=server.serve_forever, name="test-server", daemon=True)
    thread.start()
    return thread


class LoopbackListener:
    """Listens on a free 127.0.0.1 port (`port`) and calls `handle(conn)` on a thread of its
    own for each connection, until `close()`."""

    def __init__(self, handle):
        self.handle = handle
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, name="test-listener", daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def close(self):
        self.sock.close()
