"""Where a controller keeps its files.

Two layouts: a self-contained prefix (`--root DIR`, everything under DIR, no /etc/salt needed)
and the standard layout of a controller host (/etc/salt for Salt's configuration, /var/lib/kubesalt
for kubesalt's records and PKI, systemd managing the daemon).
"""

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Layout:
    root: Path  # Salt's root_dir: pki, cache, sockets and logs live below it
    conf_dir: Path  # -c for salt-master, salt-run, salt-key
    state_dir: Path  # kubesalt's records, PKI, credentials issued

    @classmethod
    def for_root(cls, root=None):
        if root is None:
            return cls(root=Path("/"), conf_dir=Path("/etc/salt"),
                       state_dir=Path("/var/lib/kubesalt"))
        root = Path(root).resolve()
        return cls(root=root, conf_dir=root / "etc" / "salt",
                   state_dir=root / "var" / "lib" / "kubesalt")

    @property
    def embedded(self):
        return self.root != Path("/")

    @property
    def master_conf(self):
        return self.conf_dir / "master"

    @property
    def kubesalt_conf(self):
        return self.conf_dir / "master.d" / "kubesalt.conf"

    @property
    def pki_dir(self):
        return self.root / "etc" / "salt" / "pki" / "master"

    @property
    def master_pub(self):
        return self.pki_dir / "master.pub"

    @property
    def pidfile(self):
        return self.root / "var" / "run" / "salt-master.pid"

    @property
    def sock_dir(self):
        return self.root / "var" / "run" / "salt" / "master"

    @property
    def master_cachedir(self):
        """Salt's job cache: every runner call's arguments and return are kept below it."""
        return self.root / "var" / "cache" / "salt" / "master"

    @property
    def log_file(self):
        return self.root / "var" / "log" / "salt" / "master"

    @property
    def api_pidfile(self):
        """salt-api's pidfile (Salt's default `api_pidfile`, re-rooted under root_dir)."""
        return self.root / "var" / "run" / "salt-api.pid"

    @property
    def gateway_presence(self):
        """The node ids with a live publish channel through the agent gateway (JSON)."""
        return self.root / "var" / "run" / "kubesalt-gateway.json"

    @property
    def api_log_file(self):
        return self.root / "var" / "log" / "salt" / "api"

    @property
    def api_conf(self):
        """The REST API's part of the master configuration (salt-api reads it too)."""
        return self.conf_dir / "master.d" / "kubesalt-api.conf"

    @property
    def api_users_file(self):
        """htpasswd-style user store of Salt's `file` eauth (mode 0600)."""
        return self.state_dir / "api" / "users.htpasswd"

    @property
    def api_roles_file(self):
        """user -> role, from which the external_auth ACLs are generated."""
        return self.state_dir / "api" / "roles.yaml"

    @property
    def installers_dir(self):
        """Where cluster.installer writes credentials when called through the REST API."""
        return self.state_dir / "installers"

    @property
    def kubesalt_pki(self):
        return self.state_dir / "pki"

    @property
    def fileserver_dir(self):
        """A file_roots entry of the master: what nodes fetch as salt://..."""
        return self.state_dir / "files"

    @property
    def artifacts_dir(self):
        return self.fileserver_dir / "kubesalt-artifacts"
