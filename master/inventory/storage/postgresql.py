"""The records in a PostgreSQL database: the production choice (`init --database URL`).

The store's SQL is written once, in SQLite's dialect where the two differ only in spelling:
`?` placeholders and rows read by column name or position. A connection here takes it as is.

Writers are serialised as SQLite serialises them: a write transaction first takes one
transaction-scoped advisory lock, so every read-modify-write sees the data no other writer
can change until it commits, whatever PostgreSQL's isolation level would otherwise allow
(one active operation per cluster, a replayed request recorded once). Readers never wait:
each reads one snapshot.
"""

import atexit
import contextlib
import os
import threading

import psycopg

from kubesalt.master.inventory.storage import location, schema

# The key of the write lock: "kubesalt" as a 64-bit integer, so that no other application
# sharing the database is likely to take the same advisory lock.
WRITE_LOCK = int.from_bytes(b"kubesalt", "big")
LOCK_TIMEOUT_MS = 30000  # as long as a SQLite writer waits (busy_timeout)
CONNECT_TIMEOUT_S = 10
VERSION_TABLE = "kubesalt_schema"
IDLE_CONNECTIONS = 4  # kept open per process for the next transactions


class DatabaseUnavailable(RuntimeError):
    """The PostgreSQL server did not accept a connection (the message names it, without the
    password, and says why)."""


class PostgreSQLDatabase:
    dialect = "postgresql"

    def __init__(self, url):
        self._url = url

    def __repr__(self):
        return f"PostgreSQLDatabase({location.shown(self._url)})"

    def shown(self):
        return f"PostgreSQL {location.shown(self._url)}"

    def _connect(self):
        try:
            return psycopg.connect(self._url, connect_timeout=CONNECT_TIMEOUT_S,
                                   row_factory=_rows)
        except psycopg.Error as exc:
            message = location.hide(str(exc).strip(), self._url)
            raise DatabaseUnavailable(f"{self.shown()} does not answer: {message}") from None

    def _begin(self, first_statement):
        """A connection in a new transaction that ran `first_statement`: an idle one of this
        process, or a new one. One the server closed meanwhile fails its first statement
        and is replaced."""
        pool = _pool(self._url)
        while True:
            conn = pool.take()
            fresh = conn is None
            if fresh:
                conn = self._connect()
            try:
                conn.execute(first_statement)
                return conn
            except psycopg.OperationalError:
                conn.close()
                if fresh:
                    raise
            except BaseException:
                conn.close()
                raise

    def _end(self, conn, commit):
        """Commit or roll back, and keep the connection for the next transaction."""
        try:
            if commit:
                conn.commit()
            elif not conn.closed:
                conn.rollback()
        except psycopg.OperationalError:
            if commit:
                raise
            # a connection lost under a failed transaction: the error that failed it is
            # what the caller is told, and the server has rolled it back already
        finally:
            _pool(self._url).give_back(conn)

    @contextlib.contextmanager
    def transaction(self):
        """A write transaction: holds the write lock from the first read to the commit."""
        conn = self._begin(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        committed = False
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield _Connection(conn)
            committed = True
        finally:
            self._end(conn, committed)

    @contextlib.contextmanager
    def reading(self):
        """One snapshot to read from, whatever commits meanwhile."""
        conn = self._begin("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        try:
            yield _Connection(conn)
        finally:
            self._end(conn, commit=False)

    def _version(self):
        with self.reading() as conn:
            if conn.execute("SELECT to_regclass(?)", (VERSION_TABLE,)).fetchone()[0] is None:
                return 0
            return conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()[0]  # noqa: S608

    def migrate(self):
        if self._version() == schema.latest():
            return  # the common case, without taking the write lock
        with self.transaction() as conn:
            # under the write lock: two processes opening a new database migrate it once
            conn.execute(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
                         "(version INTEGER NOT NULL)")
            row = conn.execute(f"SELECT version FROM {VERSION_TABLE}").fetchone()  # noqa: S608
            version = row[0] if row else 0
            for number, script in schema.postgresql_steps(version):
                for statement in schema.statements(script):
                    conn.execute(statement)
                version = number
            conn.execute(f"DELETE FROM {VERSION_TABLE}")  # noqa: S608
            conn.execute(f"INSERT INTO {VERSION_TABLE}(version) VALUES (?)", (version,))  # noqa: S608

    def tables(self):
        with self.reading() as conn:
            return sorted(r["table_name"] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE "
                "table_schema = current_schema() AND table_name <> ?", (VERSION_TABLE,)))


class _Idle:
    """The open connections of this process to one database that no transaction uses.
    Connecting costs more than most transactions (password authentication above all), and
    a runner or the REST API opens the store many times a request."""

    def __init__(self):
        self._conns, self._pid, self._lock = [], os.getpid(), threading.Lock()

    def take(self):
        with self._lock:
            if self._pid != os.getpid():
                # a forked child: the parent's connections stay the parent's (psycopg does
                # not close them when the child drops them)
                self._conns, self._pid = [], os.getpid()
            return self._conns.pop() if self._conns else None

    def give_back(self, conn):
        with self._lock:
            keep = not conn.closed and self._pid == os.getpid() and \
                len(self._conns) < IDLE_CONNECTIONS
            if keep:
                self._conns.append(conn)
        if not keep:
            conn.close()

    def close(self):
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


_IDLE = {}
_IDLE_LOCK = threading.Lock()


def _pool(url):
    with _IDLE_LOCK:
        if url not in _IDLE:
            _IDLE[url] = _Idle()
        return _IDLE[url]


@atexit.register
def close_idle(url=None):
    """Close this process's idle connections (to the database at `url`, or all): the server
    then ends their sessions at once instead of on a broken socket."""
    with _IDLE_LOCK:
        pools = [pool for key, pool in _IDLE.items() if url in (None, key)]
    for pool in pools:
        pool.close()


class _Connection:
    """A psycopg connection that runs SQL written with `?` placeholders."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, params=None):
        return self._conn.execute(*_format_style(sql, params))

    def executemany(self, sql, seq_of_params):
        cursor = self._conn.cursor()
        seq_of_params = list(seq_of_params)
        if seq_of_params:
            cursor.executemany(_format_style(sql, seq_of_params[0])[0], seq_of_params)
        return cursor


def _format_style(sql, params):
    """psycopg's placeholders are %s; a literal % is then %%. No statement of the store
    has a ? inside a string literal."""
    if not params:
        return sql, None
    return sql.replace("%", "%%").replace("?", "%s"), params


class Row:
    """A result row read as sqlite3.Row reads: by column name or position, `dict(row)`,
    unpacked as a tuple."""

    __slots__ = ("_index", "_values")

    def __init__(self, index, values):
        self._index, self._values = index, values

    def keys(self):
        return list(self._index)

    def __getitem__(self, key):
        return self._values[key if isinstance(key, int) else self._index[key]]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _rows(cursor):
    index = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: Row(index, values)
