"""Choosing and moving the database that holds a controller's records: `init --database URL`
and `migrate-database URL`. Everything is checked before anything changes; every message
shows the URL with its password as ***."""

import psycopg

from kubesalt.master.controller.daemon import ControllerError
from kubesalt.master.inventory.storage import location, transfer
from kubesalt.master.inventory.storage.postgresql import DatabaseUnavailable, PostgreSQLDatabase
from kubesalt.master.inventory.storage.sqlite import DB_NAME, SQLiteDatabase

# What the SQLite file is renamed to once its records are in PostgreSQL: kept, not used.
RETIRED_SUFFIX = ".migrated"
OWNED_DATABASE = "createdb --owner USER DATABASE"


def url_with_password(url, password_file, field):
    """`url`, with the password from the first line of `password_file` when one is given."""
    if not password_file:
        return url
    try:
        with open(password_file, encoding="utf-8") as handle:
            secret = handle.readline().rstrip("\r\n")
    except OSError as exc:
        raise ControllerError(f"{field}: cannot read {password_file}: {exc.strerror}") \
            from None
    try:
        return location.with_password(url, secret)
    except location.BadURL as exc:
        raise ControllerError(f"{field}: {exc}") from None


def reach(url, field):
    """The PostgreSQL database at `url` with kubesalt's tables (created or brought up to
    date). ControllerError naming `field` and what to fix when it cannot be used."""
    try:
        location.check_url(url)
    except location.BadURL as exc:
        raise ControllerError(f"{field}: {exc}") from None
    database = PostgreSQLDatabase(url)
    try:
        database.migrate()
    except DatabaseUnavailable as exc:
        raise ControllerError(
            f"{field}: {exc}; check that the server runs and accepts connections from this "
            "host, and the URL's user, password, host, port and database name") from None
    except psycopg.Error as exc:
        raise ControllerError(
            f"{field}: {database.shown()} did not let kubesalt create its tables: "
            f"{location.hide(str(exc).strip(), url)}; give a database the user owns "
            f"({OWNED_DATABASE})") from None
    return database


def _sqlite(state_dir):
    return SQLiteDatabase(state_dir / DB_NAME)


def _sqlite_records(state_dir):
    """{table: rows} in this controller's SQLite database ({} when it has none)."""
    if not (state_dir / DB_NAME).exists():
        return {}
    database = _sqlite(state_dir)
    database.migrate()
    with database.reading() as conn:
        return transfer.held(conn)


def _described(found):
    return ", ".join(f"{rows} {table}" for table, rows in found.items())


def choose(layout, url):
    """`init --database URL`: keep the records in PostgreSQL at `url` from now on. Refused
    when the controller has records elsewhere already (`migrate-database` moves them)."""
    field = "--database"
    current = location.configured(layout.state_dir)
    if current is not None and current != url:
        raise ControllerError(
            f"{field}: this controller's records are in {location.shown(current)}; kubesalt "
            "moves records from SQLite only, so keep that URL (or leave out --database)")
    if current is None:
        found = _sqlite_records(layout.state_dir)
        if found:
            raise ControllerError(
                f"{field}: this controller's records are in SQLite ({_described(found)}); "
                "move them with `kubesalt-controller migrate-database URL` instead")
    database = reach(url, field)
    location.choose(layout.state_dir, url)
    return database.shown()


def check_move(layout, url):
    """Everything `move` needs, checked before the controller is stopped for it."""
    field = "URL"
    current = location.configured(layout.state_dir)
    if current is not None:
        raise ControllerError(f"{field}: this controller's records are in "
                              f"{location.shown(current)} already, not in SQLite")
    with reach(url, field).reading() as conn:
        found = transfer.held(conn)
    if found:
        raise ControllerError(_not_empty(url, found))


def _not_empty(url, found):
    return (f"URL: {location.shown(url)} holds kubesalt records already ({_described(found)}); "
            f"give an empty database ({OWNED_DATABASE})")


def move(layout, url):
    """Copy every record from SQLite to PostgreSQL at `url` and use PostgreSQL from then
    on; the SQLite file is kept, renamed. The controller must not be running."""
    state_dir = layout.state_dir
    source = _sqlite(state_dir)
    source.migrate()
    target = reach(url, "URL")
    try:
        copied = transfer.copy_records(source, target)
    except transfer.TargetNotEmpty as exc:
        raise ControllerError(_not_empty(url, exc.held)) from None
    location.choose(state_dir, url)
    retired = source.retire(RETIRED_SUFFIX)
    return {"database": target.shown(), "copied": copied, "sqlite_kept_as": str(retired)}


def shown(layout):
    """Which database holds the records, fit to print (without opening it: `status` of a
    controller never initialised creates nothing)."""
    url = location.configured(layout.state_dir)
    return f"PostgreSQL {location.shown(url)}" if url else f"SQLite {layout.state_dir / DB_NAME}"
