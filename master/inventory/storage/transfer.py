"""Copying every record from one database to another (SQLite to PostgreSQL when a
controller moves its records: `kubesalt-controller migrate-database`)."""

from kubesalt.master.inventory.storage import schema


class TargetNotEmpty(ValueError):
    """The target holds records already: {table: rows} of those that do."""

    def __init__(self, held):
        self.held = held
        super().__init__(", ".join(f"{table}: {rows}" for table, rows in held.items()))


class UnknownTable(RuntimeError):
    """The source has a table this kubesalt does not know: copying would lose it."""


def held(conn):
    """{table: rows} of the record tables that are not empty."""
    counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
              for table in schema.TABLES}
    return {table: rows for table, rows in counts.items() if rows}


def copy_records(source, target):
    """Copy every table of `source` into `target`, both migrated to the latest schema, and
    return {table: rows copied}. The source stays write-locked from the first read to the
    end, so no record changes under the copy; the target commits only once every table is
    copied and counted, so a failure leaves it as it was. TargetNotEmpty when it holds
    records already."""
    unknown = sorted(set(source.tables()) - set(schema.TABLES))
    if unknown:
        raise UnknownTable(f"{source.shown()} has tables this kubesalt does not know: "
                           f"{', '.join(unknown)}")
    copied = {}
    with source.transaction() as src, target.transaction() as dst:
        found = held(dst)
        if found:
            raise TargetNotEmpty(found)
        for table in schema.TABLES:
            cursor = src.execute(f"SELECT * FROM {table}")  # noqa: S608
            columns = [d[0] for d in cursor.description]
            rows = [tuple(row) for row in cursor.fetchall()]
            dst.executemany(f"INSERT INTO {table}({', '.join(columns)}) VALUES "  # noqa: S608
                            f"({', '.join('?' for _ in columns)})", rows)
            written = dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            if written != len(rows):
                raise RuntimeError(f"{table}: {len(rows)} rows read, {written} written")
            copied[table] = len(rows)
    return copied
