"""The records in a SQLite file in the state directory: the embedded default.

WAL mode; every `salt-run` is its own process and the reactor writes too, so each
read-modify-write runs inside `BEGIN IMMEDIATE`, which takes the database's write lock before
reading; a second writer waits (busy_timeout) instead of overwriting.
"""

import contextlib
import os
import sqlite3
from pathlib import Path

from kubesalt.master.inventory.storage import schema

DB_NAME = "kubesalt.db"
BUSY_TIMEOUT_MS = 30000


class SQLiteDatabase:
    dialect = "sqlite"

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)

    def __repr__(self):
        return f"SQLiteDatabase({self.path})"

    def shown(self):
        return f"SQLite {self.path}"

    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextlib.contextmanager
    def transaction(self):
        """A write transaction: holds the write lock from the first read to the commit."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextlib.contextmanager
    def reading(self):
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def migrate(self):
        conn = self._connect()
        try:
            # WAL survives in the file; set it once, outside a transaction.
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        os.chmod(self.path, 0o600)
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in schema.sqlite_steps(version):
                for statement in schema.statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")

    def tables(self):
        with self.reading() as conn:
            return sorted(r["name"] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"))

    def retire(self, suffix):
        """Rename the database file to DB_NAME + `suffix`, whole (its WAL folded in first);
        returns the new path. Call it with no connection open."""
        conn = self._connect()
        try:
            # back to a rollback journal: the WAL's pages go into the file and the WAL is
            # removed, so the renamed file alone holds every record
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
        retired = self.path.with_name(self.path.name + suffix)
        os.replace(self.path, retired)
        return retired
