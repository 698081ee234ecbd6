"""A real kubesalt controller for tests: `kubesalt-controller init/start` under a temporary
root on loopback, driven with the real `salt-run` and `salt-key` commands, and its REST API
(salt-api over HTTPS) on a free port."""

import atexit
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubesalt.master.agent import bundle
from kubesalt.master.inventory.store import Store
from kubesalt.master.layout import Layout
from kubesalt.master.ops import status

BIN = Path(sys.executable).parent


def free_ports(count, host="127.0.0.1"):
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def running(prefix, users=(), root_mode=None):
    """A started controller under a fresh short root (Salt's IPC socket paths must stay under
    the 107-byte Unix limit), with API users (name, role, password); stopped and removed
    after."""
    root = tempfile.mkdtemp(prefix=prefix)
    if root_mode is not None:
        os.chmod(root, root_mode)
    controller = Controller(root)
    try:
        controller.init()
        for name, role, password in users:
            controller.add_user(name, role, password)
        controller.start()
        yield controller
    finally:
        controller.stop()
        shutil.rmtree(root, ignore_errors=True)


class Controller:
    def __init__(self, root, interface="127.0.0.1"):
        self.root = Path(root)
        self.interface = interface
        self.publish_port, self.ret_port, self.https_port, self.api_port = \
            free_ports(4, interface)
        self.conf_dir = self.root / "etc" / "salt"

    @property
    def api_url(self):
        return f"https://{self.interface}:{self.api_port}"

    @property
    def ca_file(self):
        """The controller CA certificate, which the API's TLS certificate chains to."""
        return self.root / "var" / "lib" / "kubesalt" / "pki" / "ca.crt"

    def add_user(self, name, role, password):
        """kubesalt-controller user add NAME --role ROLE, the password on stdin."""
        proc = subprocess.run([str(BIN / "kubesalt-controller"), "--json", "user", "add", name,
                               "--role", role, "--root", str(self.root)],
                              input=password + "\n", capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"user add {name} failed: {proc.stderr}")
        return json.loads(proc.stdout)

    def ctl(self, *args, check=True):
        proc = subprocess.run([str(BIN / "kubesalt-controller"), "--json", *args,
                               "--root", str(self.root)],
                              capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubesalt-controller {args} failed: {proc.stderr}")
        return proc

    def init(self, *extra):
        return self.ctl("init", "--interface", self.interface,
                        "--publish-port", str(self.publish_port),
                        "--ret-port", str(self.ret_port), "--https-port", str(self.https_port),
                        "--api-port", str(self.api_port), *extra)

    def start_for_lab(self, lab):
        """Init with the lab's NTP server and the agent gateway on (for the lab's edge nodes
        behind a proxy or one port) and start, which builds the node-agent bundle every lab run
        needs before conjurer; returns what `start` said."""
        [self.gateway_port] = free_ports(1, self.interface)
        self.init("--ntp-server", lab.ntp_server_address,
                  "--gateway-port", str(self.gateway_port))
        return self.start()

    # The node-agent bundle this test process's first controller built, handed to the later
    # ones before their start: each start builds it otherwise (about 7 CPU-seconds, some fifty
    # times a run). test_agent_bundle and a controller started with build_bundle=True still
    # build their own.
    _shared_bundle = None

    def start(self, build_bundle=False):
        """`kubesalt-controller start`; returns what it said."""
        agent = bundle.agent_dir(Layout.for_root(self.root).artifacts_dir)
        shared = Controller._shared_bundle
        if not build_bundle and shared is not None and not agent.exists():
            shutil.copytree(shared, agent, ignore=shutil.ignore_patterns(".lock"))
        result = json.loads(self.ctl("start").stdout)
        if not build_bundle and shared is None and (agent / bundle.MANIFEST).exists():
            keep = Path(tempfile.mkdtemp(prefix="kstest-agent-")) / "agent"
            shutil.copytree(agent, keep, ignore=shutil.ignore_patterns(".lock"))
            atexit.register(shutil.rmtree, keep.parent, ignore_errors=True)
            Controller._shared_bundle = keep
        return result

    def stop(self):
        return self.ctl("stop", check=False)

    def status(self):
        proc = self.ctl("status", check=False)
        return proc.returncode, json.loads(proc.stdout)

    def run(self, fun, *args, timeout=120):
        """salt-run FUN ARGS --out=json -> (exit code, parsed output)."""
        proc = subprocess.run(
            [str(BIN / "salt-run"), "-c", str(self.conf_dir), "--out=json", fun, *args],
            capture_output=True, text=True, timeout=timeout, env=_env(),
            stdin=subprocess.DEVNULL)
        try:
            data = json.loads(proc.stdout) if proc.stdout.strip() else None
        except json.JSONDecodeError:
            data = proc.stdout
        # salt-run exits 0 when a runner module fails to load; that is never a pass here.
        if isinstance(data, str) and "is not available" in data:
            raise AssertionError(f"salt-run {fun}: runner not loaded: {data}\n{proc.stderr}")
        return proc.returncode, data

    def cluster_status(self, cluster):
        """What `salt-run cluster.status CLUSTER` answers, read in this process from the
        controller's records through the same code (ops.status): for polling while nodes
        work, where a salt-run each time (about 1.5 CPU-seconds) competes with them."""
        return status.cluster_status(Store(Layout.for_root(self.root).state_dir), cluster)

    def run_ok(self, fun, *args):
        code, data = self.run(fun, *args)
        assert code == 0, f"salt-run {fun} {args} exited {code}: {data}"
        return data

    def api_session(self, username, password):
        """A requests session logged in to the REST API as `username` (its token set)."""
        import requests

        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca_file)
        resp = session.post(f"{self.api_url}/login", timeout=30,
                            json={"username": username, "password": password,
                                  "eauth": "file"})
        assert resp.status_code == 200, resp.text
        session.headers["X-Auth-Token"] = resp.headers["X-Auth-Token"]
        return session

    @contextlib.contextmanager
    def events(self, prefix):
        """Listen on the master's event bus (from now on) for tags starting with `prefix`."""
        import salt.config
        import salt.utils.event

        opts = salt.config.master_config(str(self.conf_dir / "master"))
        bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
        try:
            yield EventWatch(bus, prefix)
        finally:
            bus.destroy()


class EventWatch:
    def __init__(self, bus, prefix):
        self.bus, self.prefix = bus, prefix

    def wait_for(self, predicate, timeout):
        """The first event under the prefix for which `predicate(event)` holds, within
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = self.bus.get_event(wait=min(1.0, deadline - time.monotonic()),
                                       tag=self.prefix, full=True)
            if event is not None and predicate(event):
                return event
        raise AssertionError(f"no event {self.prefix}... as wanted within {timeout}s")


def last_json(text):
    """The last of the JSON documents salt-run --out=json prints (progress events come first,
    each its own document); None for no output."""
    decoder, docs, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        at += len(text[at:]) - len(text[at:].lstrip())
        doc, at = decoder.raw_decode(text, at)
        docs.append(doc)
    return docs[-1] if docs else None


def _env():
    env = dict(os.environ)
    env.pop("SALT_CONFIG_DIR", None)
    return env
