"""Runs a real server (the node endpoint) on a thread for tests that talk to it over loopback."""
import threading


def serve_in_background(server):
    """Start `server.serve_forever` on a daemon thread and return the thread."""
    thread = threading.Thread(target=server.serve_forever, name="test-server", daemon=True)
    thread.start()
    return thread
