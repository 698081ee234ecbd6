"""A real etcd member on a loopback address, with TLS and client-certificate authentication as
kubesalt's etcd state configures it (states/kubesalt/etcd/files/etcd.service.j2), for host tests
of what talks to etcd. The binary is the lab's: Debian's etcd-server, from the `etcd` layer that
tests/labkit/rootfs.py builds (or an etcd on PATH)."""

import http.client
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

from tests.labkit import rootfs


def binary():
    """The etcd binary, or None when neither the lab's layer nor PATH has one."""
    layered = rootfs.layer_dir("etcd") / "usr" / "bin" / "etcd"
    if layered.exists():
        return str(layered)
    return shutil.which("etcd")


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _free_port(host):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class Etcd:
    """One member serving https://ADDRESS:PORT; `ca`, `cert` and `key` are the CA and a client
    certificate it trusts (the API server's apiserver-etcd-client files)."""

    def __init__(self, directory, address):
        self.directory, self.address = Path(directory), address
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = _free_port(address)
        self.peer_port = _free_port(address)
        self.ca, self.cert, self.key = (str(self.directory / name)
                                        for name in ("ca.crt", "client.crt", "client.key"))
        self.process = None

    @property
    def endpoint(self):
        return f"https://{self.address}:{self.port}"

    def _certificates(self):
        pki = self.directory
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", str(pki / "ca.key"), "-out", self.ca, "-subj",
                 "/CN=etcd-ca", "-days", "2")
        for name, usage, sans in (("server", "serverAuth,clientAuth",
                                   f"IP:{self.address},IP:127.0.0.1"),
                                  ("client", "clientAuth", None)):
            _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", str(pki / f"{name}.key"), "-out",
                     str(pki / f"{name}.csr"), "-subj", f"/CN={name}")
            extensions = pki / f"{name}.ext"
            extensions.write_text(f"extendedKeyUsage={usage}\n"
                                  + (f"subjectAltName={sans}\n" if sans else ""))
            _openssl("x509", "-req", "-in", str(pki / f"{name}.csr"), "-CA", self.ca,
                     "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "2",
                     "-extfile", str(extensions), "-out", str(pki / f"{name}.crt"))
        for key in pki.glob("*.key"):
            key.chmod(0o600)

    def start(self, timeout=30.0):
        self._certificates()
        peer = f"https://{self.address}:{self.peer_port}"
        pki = self.directory
        self.process = subprocess.Popen(
            [binary(), "--name=member", f"--data-dir={pki / 'data'}",
             f"--listen-client-urls={self.endpoint}", f"--advertise-client-urls={self.endpoint}",
             f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
             f"--initial-cluster=member={peer}", "--initial-cluster-state=new",
             "--client-cert-auth=true", f"--trusted-ca-file={self.ca}",
             f"--cert-file={pki / 'server.crt'}", f"--key-file={pki / 'server.key'}",
             "--peer-client-cert-auth=true", f"--peer-trusted-ca-file={self.ca}",
             f"--peer-cert-file={pki / 'server.crt'}", f"--peer-key-file={pki / 'server.key'}"],
            stdout=subprocess.DEVNULL, stderr=open(pki / "etcd.log", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("etcd did not start: "
                                   + (pki / "etcd.log").read_text()[-2000:])
            time.sleep(0.1)
        return self

    def healthy(self):
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(self.cert, self.key)
        connection = http.client.HTTPSConnection(self.address, self.port, timeout=2,
                                                 context=context)
        try:
            connection.request("GET", "/health")
            return b'"health":"true"' in connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None
