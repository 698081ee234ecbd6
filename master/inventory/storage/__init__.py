"""Where the controller's records live, and the one place that opens their database.

SQLite in the state directory is the default: nothing runs beside the master. PostgreSQL is
the production choice (`kubesalt-controller init --database URL`). The choice is a file in the
state directory (`location`), so every process given the state directory (runners, engines,
the REST API, `kubesalt-controller`) opens the same database without being told.

A database (`sqlite.SQLiteDatabase`, `postgresql.PostgreSQLDatabase`) offers the same few
things: `transaction()` (a connection holding the write lock until it commits, rolled back
by an exception), `reading()` (a connection to read with), `migrate()` (to the latest numbered
schema of `schema`), `tables()` and `shown()`. Both connections take SQL with `?`
placeholders and give rows read by column name or position; the store's SQL is common to
both, and each dialect's differences stay in its own module.
"""

from pathlib import Path

from kubesalt.master.inventory.storage import location
from kubesalt.master.inventory.storage.sqlite import DB_NAME, SQLiteDatabase


def open_database(state_dir):
    """The database of the controller whose state directory is `state_dir` (not migrated)."""
    url = location.configured(state_dir)
    if url is None:
        return SQLiteDatabase(Path(state_dir) / DB_NAME)
    # imported here: a SQLite controller's many short salt-run processes do without it
    from kubesalt.master.inventory.storage.postgresql import PostgreSQLDatabase  # noqa: PLC0415

    return PostgreSQLDatabase(url)


def exists(state_dir):
    """Whether the controller has a database yet (a fresh root has none)."""
    return location.configured(state_dir) is not None or \
        (Path(state_dir) / DB_NAME).exists()
