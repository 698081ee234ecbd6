"""The controller's own records: clusters, installer credentials, nodes and operations.

What they mean and how each changes, whichever database holds them (`storage`: SQLite by
default, or PostgreSQL): each read-modify-write runs in one `transaction()`, which holds the
database's write lock from its first read to its commit, so a second writer (another
`salt-run`, the reactor, the endpoint) waits instead of overwriting.
"""

import dataclasses
import json
import time
from typing import NamedTuple

from kubesalt.master.inventory import storage
from kubesalt.master.inventory.spec import ClusterSpec

# kept for the callers that name the SQLite file
DB_NAME = storage.DB_NAME

# What a cluster or node is while an operation works on it; an interrupted operation leaves
# them FAILED, as its executor would have.
BUSY_STATES = ("PROVISIONING", "UPGRADING", "RESETTING", "REMOVING", "DELETING")


INTERRUPTED = "interrupted: the operation process stopped"


class NotFound(KeyError):
    pass


class AlreadyExists(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A cluster record with its typed spec."""
    name: str
    spec: ClusterSpec
    state: str
    created_at: float
    updated_at: float
    revision: int

    @classmethod
    def from_record(cls, record):
        return cls(spec=ClusterSpec.from_dict(record["spec"]),
                   **{k: record[k] for k in ("name", "state", "created_at", "updated_at",
                                             "revision")})


class Executor(NamedTuple):
    """An operation's executor as its record names it (master/ops/lease.py judges it)."""
    pid: int | None
    owner: str | None
    lease_until: float | None


def _executor(row):
    return Executor(row["pid"], row["owner"], row["lease_until"])


def _has_executor(row):
    """Queued operations have none yet: their executor is being started."""
    return row["pid"] is not None or row["owner"] is not None


class Store:
    def __init__(self, state_dir):
        self.database = storage.open_database(state_dir)
        self.database.migrate()

    def __repr__(self):
        return f"Store({self.database!r})"

    def transaction(self):
        """A write transaction: holds the write lock from the first read to the commit."""
        return self.database.transaction()

    def reading(self):
        return self.database.reading()

    # ---- clusters ---------------------------------------------------------------------------
    # `cluster`, `clusters` and `update_spec` hand out the typed spec, which every caller in
    # master/ uses; the dict-level methods below them are the storage layer they build on.

    def cluster(self, name):
        """The cluster `name` as a Cluster (NotFound when there is none)."""
        return Cluster.from_record(self.get_cluster(name))

    def clusters(self):
        return [Cluster.from_record(r) for r in self.list_clusters()]

    def update_spec(self, name, change):
        """Apply `change(ClusterSpec) -> ClusterSpec` atomically; returns the Cluster."""
        return Cluster.from_record(self.update_cluster(
            name, lambda current: change(ClusterSpec.from_dict(current)).to_dict()))

    @staticmethod
    def _cluster_row(row):
        return {
            "name": row["name"],
            "spec": json.loads(row["spec"]),
            "state": row["state"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "revision": row["revision"],
        }

    def create_cluster(self, name, spec):
        """Store a new cluster; `spec` is a ClusterSpec or its dict form."""
        if isinstance(spec, ClusterSpec):
            spec = spec.to_dict()
        now = time.time()
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM clusters WHERE name=?", (name,)).fetchone():
                raise AlreadyExists(name)
            conn.execute(
                "INSERT INTO clusters(name, spec, created_at, updated_at) VALUES (?,?,?,?)",
                (name, json.dumps(spec, sort_keys=True), now, now))

    def get_cluster(self, name, conn=None):
        if conn is None:
            with self.reading() as own:
                return self.get_cluster(name, own)
        row = conn.execute("SELECT * FROM clusters WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(name)
        return self._cluster_row(row)

    def list_clusters(self):
        with self.reading() as conn:
            rows = conn.execute("SELECT * FROM clusters ORDER BY name").fetchall()
        return [self._cluster_row(r) for r in rows]

    def update_cluster(self, name, change):
        """Apply `change(spec_dict) -> spec_dict` atomically; returns the stored record."""
        with self.transaction() as conn:
            record = self.get_cluster(name, conn)
            new_spec = change(record["spec"])
            conn.execute(
                "UPDATE clusters SET spec=?, updated_at=?, revision=revision+1 WHERE name=?",
                (json.dumps(new_spec, sort_keys=True), time.time(), name))
            return self.get_cluster(name, conn)

    def set_cluster_state(self, name, state):
        with self.transaction() as conn:
            cur = conn.execute("UPDATE clusters SET state=?, updated_at=? WHERE name=?",
                               (state, time.time(), name))
            if cur.rowcount == 0:
                raise NotFound(name)

    def delete_cluster(self, name):
        """Delete a cluster with its installers, nodes and operations (they cascade)."""
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM clusters WHERE name=?", (name,))
            if cur.rowcount == 0:
                raise NotFound(name)

    def delete_idle_cluster(self, name):
        """Delete a cluster that has no node record and no active operation, in one
        transaction so that neither can appear between the check and the deletion; False
        (nothing deleted) when it has either."""
        with self.transaction() as conn:
            self.get_cluster(name, conn)
            busy = conn.execute(
                "SELECT 1 FROM nodes WHERE cluster=? UNION ALL SELECT 1 FROM operations "
                "WHERE cluster=? AND state IN ('queued','running')", (name, name)).fetchone()
            if busy:
                return False
            conn.execute("DELETE FROM clusters WHERE name=?", (name,))
            return True

    # ---- installer credentials --------------------------------------------------------------

    def add_installer(self, cluster, serial, issued_at, not_after, rotate=False):
        """Record an issued installer. With `rotate`, every earlier one of the cluster is
        revoked in the same transaction (so two rotations at once leave exactly the later
        one valid); returns the revoked serials."""
        with self.transaction() as conn:
            self.get_cluster(cluster, conn)
            conn.execute(
                "INSERT INTO installers(serial, cluster, issued_at, not_after) VALUES (?,?,?,?)",
                (serial, cluster, issued_at, not_after))
            return self._revoke(conn, cluster, keep=(serial,)) if rotate else []

    def revoke_installers(self, cluster, keep=()):
        """Revoke every unrevoked installer of `cluster` except the serials in `keep`."""
        with self.transaction() as conn:
            return self._revoke(conn, cluster, keep)

    @staticmethod
    def _revoke(conn, cluster, keep):
        rows = conn.execute(
            "SELECT serial FROM installers WHERE cluster=? AND revoked_at IS NULL",
            (cluster,)).fetchall()
        revoked = [r["serial"] for r in rows if r["serial"] not in keep]
        now = time.time()
        conn.executemany("UPDATE installers SET revoked_at=? WHERE serial=?",
                         [(now, s) for s in revoked])
        return revoked

    def installers(self, cluster):
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT * FROM installers WHERE cluster=? ORDER BY issued_at", (cluster,)
            ).fetchall()
        return [dict(r) for r in rows]

    def valid_installer_serials(self, cluster, now=None):
        now = time.time() if now is None else now
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT serial FROM installers WHERE cluster=? AND revoked_at IS NULL "
                "AND not_after > ?", (cluster, now)).fetchall()
        return {r["serial"] for r in rows}

    # ---- nodes --------------------------------------------------------------------------------

    @staticmethod
    def _node_row(row):
        data = dict(row)
        data["config"] = json.loads(data["config"]) if data["config"] else None
        data["reported_facts"] = json.loads(data["reported_facts"]) \
            if data.get("reported_facts") else None
        return data

    def enroll_node(self, node_id, cluster, pub_sha256, serial, address, now=None,
                    facts=None):
        """Record (or refresh, when conjurer runs again) a node's enrollment with the facts
        it reported; keeps its configuration."""
        now = time.time() if now is None else now
        reported = json.dumps(facts, sort_keys=True) if facts else None
        with self.transaction() as conn:
            self.get_cluster(cluster, conn)
            conn.execute(
                "INSERT INTO nodes(id, cluster, pub_sha256, serial, address, enrolled_at, "
                "updated_at, reported_facts) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO "
                "UPDATE SET pub_sha256=excluded.pub_sha256, serial=excluded.serial, "
                "address=excluded.address, updated_at=excluded.updated_at, "
                "reported_facts=excluded.reported_facts",
                (node_id, cluster, pub_sha256, serial, address, now, now, reported))
            return self.get_node(node_id, conn)

    def get_node(self, node_id, conn=None):
        if conn is None:
            with self.reading() as own:
                return self.get_node(node_id, own)
        row = conn.execute("SELECT * FROM nodes WHERE id=?", (node_id,)).fetchone()
        if row is None:
            raise NotFound(node_id)
        return self._node_row(row)

    def list_nodes(self, cluster=None):
        with self.reading() as conn:
            if cluster is None:
                rows = conn.execute("SELECT * FROM nodes ORDER BY id").fetchall()
            else:
                rows = conn.execute("SELECT * FROM nodes WHERE cluster=? ORDER BY id",
                                    (cluster,)).fetchall()
        return [self._node_row(r) for r in rows]

    def remove_node(self, node_id):
        with self.transaction() as conn:
            cur = conn.execute("DELETE FROM nodes WHERE id=?", (node_id,))
            if cur.rowcount == 0:
                raise NotFound(node_id)

    def set_node_config(self, node_id, config):
        with self.transaction() as conn:
            cur = conn.execute("UPDATE nodes SET config=?, updated_at=? WHERE id=?",
                               (json.dumps(config, sort_keys=True), time.time(), node_id))
            if cur.rowcount == 0:
                raise NotFound(node_id)

    def set_node_phase(self, node_ids, phase):
        with self.transaction() as conn:
            conn.executemany("UPDATE nodes SET phase=?, updated_at=? WHERE id=?",
                             [(phase, time.time(), n) for n in node_ids])

    # ---- health -----------------------------------------------------------------------------

    def record_health(self, cluster, state, detail, nodes, now=None):
        """Store one check of `cluster`: its state with `detail` (JSON-able) and each node's
        (state, reason) in `nodes`. A state that did not change keeps its `since`. Returns
        what changed: [(kind "cluster"|"node", id, old state or None, new state)]."""
        now = time.time() if now is None else now
        changes = []
        with self.transaction() as conn:
            self.get_cluster(cluster, conn)
            known = {row["id"] for row in conn.execute(
                "SELECT id FROM nodes WHERE cluster=?", (cluster,))}
            for node_id, (node_state, reason) in sorted(nodes.items()):
                if node_id not in known:  # removed while the check ran
                    continue
                row = conn.execute("SELECT state, since FROM node_health WHERE node=?",
                                   (node_id,)).fetchone()
                since = row["since"] if row and row["state"] == node_state else now
                conn.execute(
                    "INSERT INTO node_health(node, state, reason, since, checked_at) "
                    "VALUES (?,?,?,?,?) ON CONFLICT(node) DO UPDATE SET state=excluded.state, "
                    "reason=excluded.reason, since=excluded.since, "
                    "checked_at=excluded.checked_at", (node_id, node_state, reason, since, now))
                if not row or row["state"] != node_state:
                    changes.append(("node", node_id, row["state"] if row else None,
                                    node_state))
            row = conn.execute("SELECT state, since FROM cluster_health WHERE cluster=?",
                               (cluster,)).fetchone()
            since = row["since"] if row and row["state"] == state else now
            conn.execute(
                "INSERT INTO cluster_health(cluster, state, since, checked_at, detail) "
                "VALUES (?,?,?,?,?) ON CONFLICT(cluster) DO UPDATE SET state=excluded.state, "
                "since=excluded.since, checked_at=excluded.checked_at, detail=excluded.detail",
                (cluster, state, since, now, json.dumps(detail, sort_keys=True)))
            if not row or row["state"] != state:
                changes.append(("cluster", cluster, row["state"] if row else None, state))
        return changes

    def cluster_health(self):
        """{cluster: {state, since, **detail}} of the clusters checked so far."""
        with self.reading() as conn:
            rows = conn.execute("SELECT * FROM cluster_health").fetchall()
        return {r["cluster"]: {**json.loads(r["detail"] or "{}"), "state": r["state"],
                               "since": r["since"]} for r in rows}

    def node_health(self):
        """{node: {state, reason, since}} of the nodes checked so far."""
        with self.reading() as conn:
            rows = conn.execute("SELECT * FROM node_health").fetchall()
        return {r["node"]: {"state": r["state"], "reason": r["reason"], "since": r["since"]}
                for r in rows}

    def health_checked_at(self, cluster):
        """When `cluster`'s health was last checked, or None."""
        with self.reading() as conn:
            row = conn.execute("SELECT checked_at FROM cluster_health WHERE cluster=?",
                               (cluster,)).fetchone()
        return row["checked_at"] if row else None

    # ---- operations ---------------------------------------------------------------------------

    def create_operation(self, op_id, cluster, kind, stages, is_alive, params=None):
        """Record a new operation with its stages, unless another one of this cluster is still
        active. `is_alive(executor)` (an Executor) tells a running operation from one whose
        executor died (then it is marked failed as interrupted, and the new one may start).
        `params`: what the operation was asked for (e.g. the target version), shown with it."""
        now = time.time()
        with self.transaction() as conn:
            self.get_cluster(cluster, conn)
            for row in conn.execute("SELECT * FROM operations WHERE cluster=? AND state IN "
                                    "('queued','running')", (cluster,)).fetchall():
                if _has_executor(row) and not is_alive(_executor(row)):
                    self._interrupt(conn, row["id"], now)
                    continue
                raise AlreadyExists(row["id"])
            conn.execute("INSERT INTO operations(id, cluster, kind, state, created_at, params) "
                         "VALUES (?,?,?,?,?,?)", (op_id, cluster, kind, "queued", now,
                                                  json.dumps(params or {}, sort_keys=True)))
            conn.executemany(
                "INSERT INTO operation_stages(operation, position, name, title, state, nodes, "
                "error, node_results) VALUES (?,?,?,?,?,?,?,?)",
                [(op_id, i, st["name"], st["title"], "skipped" if st["skip"] else "pending",
                  json.dumps(st["nodes"]), st["skip"] or None, _earlier_results(st))
                 for i, st in enumerate(stages)])

    def _interrupt(self, conn, op_id, now, reason=INTERRUPTED):
        running = conn.execute("SELECT position, node_results FROM operation_stages WHERE "
                               "operation=? AND state='running'", (op_id,)).fetchall()
        if not running:
            # stopped between two stages: the one that was about to start is where a rerun
            # resumes, so it carries the interruption
            running = conn.execute("SELECT position, node_results FROM operation_stages "
                                   "WHERE operation=? AND state='pending' ORDER BY position "
                                   "LIMIT 1",
                                   (op_id,)).fetchall()
        conn.executemany("UPDATE operation_stages SET state='failed', finished_at=?, error=?, "
                         "node_results=? WHERE operation=? AND position=?",
                         [(now, reason, _interrupted_results(r["node_results"], now, reason),
                           op_id, r["position"]) for r in running])
        failed = conn.execute("SELECT name FROM operation_stages WHERE operation=? AND "
                              "state='failed' ORDER BY position", (op_id,)).fetchone()
        conn.execute("UPDATE operations SET state='failed', finished_at=?, error=?, "
                     "failed_stage=COALESCE(failed_stage, ?) WHERE id=?",
                     (now, reason, failed["name"] if failed else None, op_id))
        # what the executor would have recorded had it ended the operation itself
        op = conn.execute("SELECT cluster FROM operations WHERE id=?", (op_id,)).fetchone()
        busy = ",".join(f"'{state}'" for state in BUSY_STATES)
        conn.execute(f"UPDATE clusters SET state='FAILED', updated_at=? WHERE name=? AND "  # noqa: S608
                     f"state IN ({busy})", (now, op["cluster"]))
        nodes = {n for (raw,) in conn.execute("SELECT nodes FROM operation_stages WHERE "
                                              "operation=?", (op_id,)) for n in json.loads(raw)}
        conn.executemany(f"UPDATE nodes SET phase='FAILED', updated_at=? WHERE id=? AND "  # noqa: S608
                         f"phase IN ({busy})", [(now, n) for n in sorted(nodes)])

    def active_operations(self):
        """(id, Executor) of every operation of any cluster still queued or running."""
        with self.reading() as conn:
            return [(r["id"], _executor(r)) for r in conn.execute(
                "SELECT id, pid, owner, lease_until FROM operations WHERE state IN "
                "('queued','running')")]

    def interrupt_operation(self, op_id, reason):
        """Mark an active operation failed at its running stage with `reason`."""
        with self.transaction() as conn:
            row = conn.execute("SELECT state FROM operations WHERE id=?", (op_id,)).fetchone()
            if row is not None and row["state"] in ("queued", "running"):
                self._interrupt(conn, op_id, time.time(), reason)

    def reap_operations(self, cluster, is_alive):
        """Mark operations whose executor died as failed (interrupted); `is_alive` as for
        create_operation."""
        now = time.time()
        with self.transaction() as conn:
            for row in conn.execute("SELECT * FROM operations WHERE cluster=? AND state IN "
                                    "('queued','running')", (cluster,)).fetchall():
                if _has_executor(row) and not is_alive(_executor(row)):
                    self._interrupt(conn, row["id"], now)

    def start_operation(self, op_id, pid, owner=None, lease_until=None):
        """The operation runs, in process `pid`; `owner` is that process's identity and
        `lease_until` when its lease runs out unless renewed (master/ops/lease.py)."""
        with self.transaction() as conn:
            conn.execute("UPDATE operations SET state='running', started_at=?, pid=?, "
                         "owner=?, lease_until=? WHERE id=?",
                         (time.time(), pid, None if owner is None else str(owner),
                          lease_until, op_id))

    def renew_lease(self, op_id, owner, until):
        """Extend the lease of `owner` on active operation `op_id` to `until`; False when the
        operation ended or another executor holds it."""
        with self.transaction() as conn:
            cur = conn.execute("UPDATE operations SET lease_until=? WHERE id=? AND owner=? "
                               "AND state IN ('queued','running')", (until, op_id, str(owner)))
            return cur.rowcount == 1

    def stage_started(self, op_id, name):
        with self.transaction() as conn:
            conn.execute("UPDATE operation_stages SET state='running', started_at=?, "
                         "finished_at=NULL, error=NULL WHERE operation=? AND name=?",
                         (time.time(), op_id, name))

    def stage_finished(self, op_id, name, ok, error=None, node_results=None):
        with self.transaction() as conn:
            conn.execute("UPDATE operation_stages SET state=?, finished_at=?, error=?, "
                         "node_results=? WHERE operation=? AND name=?",
                         ("done" if ok else "failed", time.time(), error,
                          json.dumps(node_results) if node_results is not None else None,
                          op_id, name))

    def record_stage(self, op_id, name, state, started_at, finished_at, error, node_results):
        """A stage's state as its executor sees it, with each node's own record."""
        with self.transaction() as conn:
            conn.execute("UPDATE operation_stages SET state=?, started_at=?, finished_at=?, "
                         "error=?, node_results=? WHERE operation=? AND name=?",
                         (state, started_at, finished_at, error,
                          json.dumps(node_results, sort_keys=True), op_id, name))

    def finish_operation(self, op_id, ok, error=None, failed_stage=None, failed_node=None,
                         state=None):
        """End an operation: done when `ok`, else failed (or `state`, e.g. cancelled)."""
        with self.transaction() as conn:
            conn.execute("UPDATE operations SET state=?, finished_at=?, error=?, "
                         "failed_stage=?, failed_node=? WHERE id=?",
                         (state or ("done" if ok else "failed"), time.time(), error,
                          failed_stage, failed_node, op_id))

    def request_cancel(self, op_id):
        """Ask the executor of active operation `op_id` to cancel it; False when the
        operation is no longer active."""
        with self.transaction() as conn:
            cur = conn.execute("UPDATE operations SET cancel_requested=COALESCE("
                               "cancel_requested, ?) WHERE id=? AND state IN "
                               "('queued','running')", (time.time(), op_id))
            return cur.rowcount == 1

    def cancel_requested(self, op_id):
        """When a cancel of `op_id` was asked for, or None."""
        with self.reading() as conn:
            row = conn.execute("SELECT cancel_requested FROM operations WHERE id=?",
                               (op_id,)).fetchone()
        return row["cancel_requested"] if row else None

    def operation(self, op_id):
        with self.reading() as conn:
            row = conn.execute("SELECT * FROM operations WHERE id=?", (op_id,)).fetchone()
            if row is None:
                raise NotFound(op_id)
            stages = conn.execute("SELECT * FROM operation_stages WHERE operation=? "
                                  "ORDER BY position", (op_id,)).fetchall()
        data = dict(row)
        data["params"] = json.loads(data["params"]) if data.get("params") else {}
        data["stages"] = []
        for stage in stages:
            entry = dict(stage)
            entry["nodes"] = json.loads(entry["nodes"])
            entry["node_results"] = (json.loads(entry["node_results"])
                                     if entry["node_results"] else None)
            entry.pop("operation")
            data["stages"].append(entry)
        return data

    def operations(self, cluster):
        with self.reading() as conn:
            rows = conn.execute("SELECT id FROM operations WHERE cluster=? ORDER BY "
                                "created_at", (cluster,)).fetchall()
        found = []
        for row in rows:
            try:
                found.append(self.operation(row["id"]))
            except NotFound:  # its cluster was deleted meanwhile, and the record with it
                continue
        return found

    # ---- signed requests (enrollment replay) -------------------------------------------------

    def remember_request(self, digest, keep_until, now=None):
        """Record an accepted signed request by `digest` until `keep_until`. False if it is
        already recorded: the request is a replay. Forgets the expired ones on the way, so the
        table holds only the last few minutes of requests."""
        now = time.time() if now is None else now
        with self.transaction() as conn:
            conn.execute("DELETE FROM signed_requests WHERE keep_until < ?", (now,))
            cur = conn.execute("INSERT INTO signed_requests(digest, keep_until) VALUES "
                               "(?,?) ON CONFLICT DO NOTHING", (digest, keep_until))
            return cur.rowcount == 1


def _earlier_results(stage):
    """The node records of a stage some of whose nodes a failed run already did."""
    done = stage.get("done_nodes") or []
    if not done:
        return None
    return json.dumps({n: {"state": "skipped", "error": stage["done_reason"]}
                       for n in done}, sort_keys=True)


def _interrupted_results(raw, now, reason):
    """A running stage's node records once its executor is gone: what still ran failed."""
    results = json.loads(raw) if raw else None
    if not isinstance(results, dict):
        return raw
    for result in results.values():
        if isinstance(result, dict) and result.get("state") == "running":
            result.update(state="failed", finished_at=now, error=reason)
    return json.dumps(results, sort_keys=True)
