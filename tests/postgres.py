"""A private PostgreSQL server for tests, from Debian's `postgresql` package.

initdb and pg_ctl (under /usr/lib/postgresql/VERSION/bin) run a server from a temporary
directory: a Unix socket there (trust, for the tests' own set-up) and a free loopback port
(password authentication, as a controller would log in). Run as root, the server runs as the
`postgres` system user, since PostgreSQL refuses root. `make test` installs the package.
"""

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

PACKAGE_ROOT = Path("/usr/lib/postgresql")
MISSING = ("PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin): "
           "apt-get install postgresql, which `make test` does as root")
ROLE = "kubesalt"  # the role a controller logs in as; owns every database made here
ROLE_PASSWORD = "pg-Secret-4-tests"  # noqa: S105 - a throwaway server's, never a real one


def find_bindir():
    """The newest installed server's bin directory, or None."""
    found = [p.parent for p in PACKAGE_ROOT.glob("*/bin/initdb") if (p.parent / "pg_ctl").exists()]
    return max(found, key=lambda p: int(p.parent.name), default=None) if found else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, bindir, base, port):
        self.bindir, self.base, self.port = bindir, Path(base), port
        self.data = self.base / "data"
        self._names = itertools.count(1)
        self._user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    def _run(self, *argv):
        as_user = {} if self._user is None else {
            "user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        proc = subprocess.run([str(self.bindir / argv[0]), *argv[1:]], cwd=self.base,
                              capture_output=True, text=True, timeout=120, check=False,
                              **as_user)
        if proc.returncode != 0:
            log = self.base / "server.log"
            raise RuntimeError(f"{argv[0]} failed: {proc.stderr}"
                               + (f"\n{log.read_text()}" if log.exists() else ""))

    def start(self):
        if self._user is not None:
            os.chown(self.base, self._user.pw_uid, self._user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
        # durability settings off: a test server's data is thrown away
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.base} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")
        self.admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'")

    def stop(self):
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def _socket_url(self, user, database):
        return f"postgresql://{user}@/{database}?host={self.base}&port={self.port}"

    def admin(self, sql, database="postgres"):
        """Run `sql` as the superuser; the rows it returns, if any."""
        with psycopg.connect(self._socket_url("postgres", database), autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else None

    def create_database(self):
        """A new empty database owned by ROLE; its name. Its collation is a language's
        (ICU's en-US: "a" sorts before "B"), as a production database's often is."""
        name = f"ks{next(self._names)}"
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE} TEMPLATE template0 "
                   "LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
        return name

    def url(self, database, password=True):
        """How a controller reaches `database`: over loopback TCP as ROLE, with the
        password in the URL (or, with password=False, over the Unix socket, trusted)."""
        if not password:
            return self._socket_url(ROLE, database)
        return f"postgresql://{ROLE}:{ROLE_PASSWORD}@127.0.0.1:{self.port}/{database}"


@contextlib.contextmanager
def running(bindir):
    """A started server, stopped and removed after."""
    server = Server(bindir, tempfile.mkdtemp(prefix="kspg-"), _free_port())
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop()
        shutil.rmtree(server.base, ignore_errors=True)
