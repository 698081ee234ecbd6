"""Debian's tinyproxy, run by a test on a free loopback port with its own configuration: the
site proxy that nodes reach the controller through."""

import os
import shutil
import signal
import socket
import subprocess

import pytest

from tests.waiting import wait_for

BINARY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"


def _free_port(address):
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _answers(address, port):
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


class TinyProxy:
    """`auth` is (user, password) or None; `connect_ports` the ports CONNECT may reach (None:
    any, as tinyproxy allows without a ConnectPort line); `listen` its address and `allow`
    the clients it serves (an address or a network)."""

    def __init__(self, directory, auth=None, connect_ports=None, listen="127.0.0.1",
                 allow="127.0.0.1"):
        if not os.access(BINARY, os.X_OK):
            pytest.skip("tinyproxy is not installed (apt-get install tinyproxy-bin; make test "
                        "installs it as root)")
        self.directory = directory
        self.listen = listen
        self.port = _free_port(listen)
        self.auth = auth
        self.log = directory / "tinyproxy.log"
        lines = [f"Port {self.port}", f"Listen {listen}", "Timeout 600", "MaxClients 64",
                 "LogLevel Info", f'LogFile "{self.log}"', f"Allow {allow}"]
        if auth:
            lines.append("BasicAuth %s %s" % auth)
        lines += [f"ConnectPort {p}" for p in connect_ports or ()]
        self.config = directory / "tinyproxy.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process = None

    @property
    def url(self):
        credentials = "%s:%s@" % self.auth if self.auth else ""
        return f"http://{credentials}{self.listen}:{self.port}"

    def start(self):
        self.process = subprocess.Popen([BINARY, "-d", "-c", str(self.config)],  # noqa: S603
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for(lambda: _answers(self.listen, self.port) or self.process.poll() is not None, 10,
                 "tinyproxy to listen", interval=0.1)
        if self.process.poll() is not None:
            raise AssertionError("tinyproxy exited (%s): %s" % (
                self.process.returncode, self.log.read_text() if self.log.exists() else ""))
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            # tinyproxy forks no workers in 1.11 (threads), so its own pid is the whole proxy.
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        wait_for(lambda: not _answers(self.listen, self.port), 10, "tinyproxy's port to close",
                 interval=0.1)

    def restart(self):
        self.stop()
        return self.start()
