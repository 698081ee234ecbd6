"""The records' tables and their numbered migrations, for SQLite and for PostgreSQL.

A schema version means the same tables and columns on both. SQLite controllers reached
version 10 one migration at a time (SQLITE_HISTORY); PostgreSQL support began at version 10,
so a new PostgreSQL database gets that schema in one step (POSTGRESQL_SCHEMA). Every later
migration is a `Migration` with both dialects' SQL, appended to LATER.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Migration:
    sqlite: str
    postgresql: str


# Each entry upgrades a SQLite schema by one version; never edit an entry that has shipped.
SQLITE_HISTORY = [
    """
    CREATE TABLE clusters (
        name        TEXT PRIMARY KEY,
        spec        TEXT NOT NULL,
        state       TEXT NOT NULL DEFAULT 'CREATED',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        revision    INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE installers (
        serial      TEXT PRIMARY KEY,
        cluster     TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        issued_at   REAL NOT NULL,
        not_after   REAL NOT NULL,
        revoked_at  REAL
    );
    CREATE INDEX installers_by_cluster ON installers(cluster);
    """,
    """
    CREATE TABLE nodes (
        id          TEXT PRIMARY KEY,
        cluster     TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        pub_sha256  TEXT NOT NULL,
        serial      TEXT NOT NULL,
        address     TEXT,
        enrolled_at REAL NOT NULL,
        updated_at  REAL NOT NULL,
        config      TEXT,
        phase       TEXT
    );
    CREATE INDEX nodes_by_cluster ON nodes(cluster);
    """,
    """
    CREATE TABLE operations (
        id           TEXT PRIMARY KEY,
        cluster      TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        kind         TEXT NOT NULL,
        state        TEXT NOT NULL,
        created_at   REAL NOT NULL,
        started_at   REAL,
        finished_at  REAL,
        pid          INTEGER,
        error        TEXT,
        failed_stage TEXT,
        failed_node  TEXT
    );
    CREATE INDEX operations_by_cluster ON operations(cluster, created_at);
    CREATE TABLE operation_stages (
        operation    TEXT NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        position     INTEGER NOT NULL,
        name         TEXT NOT NULL,
        title        TEXT NOT NULL,
        state        TEXT NOT NULL,
        nodes        TEXT NOT NULL,
        started_at   REAL,
        finished_at  REAL,
        error        TEXT,
        node_results TEXT,
        PRIMARY KEY (operation, position)
    );
    """,
    """
    ALTER TABLE operations ADD COLUMN params TEXT;
    """,
    """
    CREATE TABLE signed_requests (
        digest      TEXT PRIMARY KEY,
        keep_until  REAL NOT NULL
    );
    CREATE INDEX signed_requests_by_expiry ON signed_requests(keep_until);
    """,
    # proxy.tls_termination was accepted but read by nothing; it is no longer a setting.
    """
    UPDATE clusters SET spec = json_remove(spec, '$.proxy.tls_termination')
        WHERE json_type(spec, '$.proxy') = 'object';
    """,
    # What conjurer reported about the node when it enrolled (shown until it is probed).
    """
    ALTER TABLE nodes ADD COLUMN reported_facts TEXT;
    """,
    # When an operator asked to cancel the operation (cluster.cancel); its executor stops.
    """
    ALTER TABLE operations ADD COLUMN cancel_requested REAL;
    """,
    # Health as the controller's checks last found it (master/health): each state with the
    # time it began, so "degraded since" survives a restart of the controller.
    """
    CREATE TABLE cluster_health (
        cluster     TEXT PRIMARY KEY REFERENCES clusters(name) ON DELETE CASCADE,
        state       TEXT NOT NULL,
        since       REAL NOT NULL,
        checked_at  REAL NOT NULL,
        detail      TEXT
    );
    CREATE TABLE node_health (
        node        TEXT PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
        state       TEXT NOT NULL,
        reason      TEXT,
        since       REAL NOT NULL,
        checked_at  REAL NOT NULL
    );
    """,
]

# Version len(SQLITE_HISTORY) on PostgreSQL. Column for column what SQLite has then, with
# PostgreSQL's types: REAL is SQLite's 8-byte float (PostgreSQL's REAL has 4 bytes, too few
# for a timestamp), and text compares byte by byte ("C"), as SQLite's does, so every ORDER BY
# lists records in the same order on both whatever the database's locale.
POSTGRESQL_SCHEMA = """
    CREATE TABLE clusters (
        name        TEXT COLLATE "C" PRIMARY KEY,
        spec        TEXT NOT NULL,
        state       TEXT COLLATE "C" NOT NULL DEFAULT 'CREATED',
        created_at  DOUBLE PRECISION NOT NULL,
        updated_at  DOUBLE PRECISION NOT NULL,
        revision    INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE installers (
        serial      TEXT COLLATE "C" PRIMARY KEY,
        cluster     TEXT COLLATE "C" NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        issued_at   DOUBLE PRECISION NOT NULL,
        not_after   DOUBLE PRECISION NOT NULL,
        revoked_at  DOUBLE PRECISION
    );
    CREATE INDEX installers_by_cluster ON installers(cluster);
    CREATE TABLE nodes (
        id          TEXT COLLATE "C" PRIMARY KEY,
        cluster     TEXT COLLATE "C" NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        pub_sha256  TEXT COLLATE "C" NOT NULL,
        serial      TEXT COLLATE "C" NOT NULL,
        address     TEXT COLLATE "C",
        enrolled_at DOUBLE PRECISION NOT NULL,
        updated_at  DOUBLE PRECISION NOT NULL,
        config      TEXT,
        phase       TEXT COLLATE "C",
        reported_facts TEXT
    );
    CREATE INDEX nodes_by_cluster ON nodes(cluster);
    CREATE TABLE operations (
        id           TEXT COLLATE "C" PRIMARY KEY,
        cluster      TEXT COLLATE "C" NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
        kind         TEXT COLLATE "C" NOT NULL,
        state        TEXT COLLATE "C" NOT NULL,
        created_at   DOUBLE PRECISION NOT NULL,
        started_at   DOUBLE PRECISION,
        finished_at  DOUBLE PRECISION,
        pid          INTEGER,
        error        TEXT,
        failed_stage TEXT COLLATE "C",
        failed_node  TEXT COLLATE "C",
        params       TEXT,
        cancel_requested DOUBLE PRECISION
    );
    CREATE INDEX operations_by_cluster ON operations(cluster, created_at);
    CREATE TABLE operation_stages (
        operation    TEXT COLLATE "C" NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
        position     INTEGER NOT NULL,
        name         TEXT COLLATE "C" NOT NULL,
        title        TEXT NOT NULL,
        state        TEXT COLLATE "C" NOT NULL,
        nodes        TEXT NOT NULL,
        started_at   DOUBLE PRECISION,
        finished_at  DOUBLE PRECISION,
        error        TEXT,
        node_results TEXT,
        PRIMARY KEY (operation, position)
    );
    CREATE TABLE signed_requests (
        digest      TEXT COLLATE "C" PRIMARY KEY,
        keep_until  DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX signed_requests_by_expiry ON signed_requests(keep_until);
    CREATE TABLE cluster_health (
        cluster     TEXT COLLATE "C" PRIMARY KEY REFERENCES clusters(name) ON DELETE CASCADE,
        state       TEXT COLLATE "C" NOT NULL,
        since       DOUBLE PRECISION NOT NULL,
        checked_at  DOUBLE PRECISION NOT NULL,
        detail      TEXT
    );
    CREATE TABLE node_health (
        node        TEXT COLLATE "C" PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
        state       TEXT COLLATE "C" NOT NULL,
        reason      TEXT,
        since       DOUBLE PRECISION NOT NULL,
        checked_at  DOUBLE PRECISION NOT NULL
    );
"""

# Migrations after version len(SQLITE_HISTORY), numbered on from it, for both dialects.
LATER = [
    # Who runs an operation (host, boot, pid, the pid's start time) and until when its lease
    # holds (master/ops/lease.py): a pid alone is reused, and means nothing on another master.
    Migration(
        sqlite="""
        ALTER TABLE operations ADD COLUMN owner TEXT;
        ALTER TABLE operations ADD COLUMN lease_until REAL;
        """,
        postgresql="""
        ALTER TABLE operations ADD COLUMN owner TEXT;
        ALTER TABLE operations ADD COLUMN lease_until DOUBLE PRECISION;
        """),
]

# Every table of the records, in an order in which their references allow inserting them:
# what moving the records to another database copies.
TABLES = ("clusters", "installers", "nodes", "operations", "operation_stages",
          "signed_requests", "cluster_health", "node_health")


def latest():
    return len(SQLITE_HISTORY) + len(LATER)


def sqlite_steps(version):
    """[(version reached, script)] that bring a SQLite schema of `version` up to date."""
    scripts = SQLITE_HISTORY + [m.sqlite for m in LATER]
    return list(enumerate(scripts[version:], start=version + 1))


def postgresql_steps(version):
    """[(version reached, script)] that bring a PostgreSQL schema of `version` (0: none)
    up to date."""
    baseline = len(SQLITE_HISTORY)
    steps = [(baseline, POSTGRESQL_SCHEMA)] if version < baseline else []
    later = range(max(version, baseline) - baseline, len(LATER))
    return steps + [(baseline + i + 1, LATER[i].postgresql) for i in later]


def statements(script):
    """A migration's statements, one by one (none holds a ; of its own)."""
    return [s for s in script.split(";") if s.strip()]
