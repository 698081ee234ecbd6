"""A kubesalt node without the lab: the enrollment conjurer performs, then a real salt-minion
with the configuration conjurer writes, re-rooted under a test directory on loopback.

Used where a test needs real minions talking to a real controller but not a whole machine
(no hostname change, no systemd unit); the lab tests run the real conjurer."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kubesalt.minion_bootstrap import agent, credentials

BIN = Path(sys.executable).parent


class LoopbackNode:
    def __init__(self, root, node_id, creds_text, passphrase, cluster):
        self.root = Path(root)
        self.id = node_id
        self.creds = credentials.open_credentials(creds_text, passphrase, cluster)
        self.conf_dir = self.root / "etc" / "salt"
        self.pki_dir = self.conf_dir / "pki" / "minion"

    @classmethod
    def from_installer(cls, root, installer_dir, cluster, short_id):
        """A node of `cluster` with its key pair, opening the files `cluster.installer` wrote
        to `installer_dir`; its id is node-<short_id>-127-0-0-1-<cluster>."""
        installer_dir = Path(installer_dir)
        node = cls(root, f"node-{short_id}-127-0-0-1-{cluster}",
                   (installer_dir / f"{cluster}.pem").read_text(),
                   (installer_dir / f"{cluster}-passphrase.txt").read_text().strip(), cluster)
        node.generate_keys()
        return node

    def generate_keys(self):
        self.pki_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(BIN / "python"), "-c",
                        "import sys, salt.crypt; salt.crypt.write_keys(sys.argv[1], 'minion', "
                        "2048)", str(self.pki_dir)], check=True)
        return (self.pki_dir / "minion.pub").read_text()

    def enroll(self, creds=None, node_id=None, facts=None):
        """POST the signed enrollment exactly as conjurer does, with the `facts` it reports;
        returns (status, answer)."""
        creds = creds or self.creds
        minion_pub = (self.pki_dir / "minion.pub").read_text()
        request, signature = creds.enrollment_request(node_id or self.id, minion_pub,
                                                      time.time(), facts)
        payload = {"request": request, "signature": signature,
                   "installer_cert": creds.installer_cert_pem, "minion_pub": minion_pub}
        controller = creds.controller
        req = urllib.request.Request(
            f"https://{controller['address']}:{controller['https_port']}/v1/enroll",
            data=json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=creds.ssl_context(), timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def start_minion(self, tunnel_ports=None):
        """With `tunnel_ports`, the minion reaches the controller through a node tunnel
        listening there (minion_bootstrap.tunnel), as conjurer configures it behind a proxy."""
        config = json.loads(agent.minion_config(self.id, self.creds.cluster,
                                                self.creds.controller, acceptance_wait=1,
                                                tunnel_ports=tunnel_ports))
        config["root_dir"] = str(self.root)
        config["utils_dirs"] = [str(self.root / "var/cache/salt/minion/extmods/utils")]
        (self.conf_dir / "minion.d").mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "minion").write_text("")
        (self.conf_dir / "minion.d" / "kubesalt.conf").write_text(json.dumps(config))
        subprocess.run([str(BIN / "salt-minion"), "-c", str(self.conf_dir), "-d"], check=True)

    def stop_minion(self):
        pidfile = self.root / "var" / "run" / "salt-minion.pid"
        try:
            pid = int(pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

