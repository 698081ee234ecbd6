"""Deleting a cluster (cluster.delete). A cluster with nothing on it goes at once. One with
nodes (node records, or keys named for it that no record owns) or a running operation is
refused, with what to do: deleting it would leave its nodes running kubelet and etcd with keys
no runner manages.

`force=True confirm=True` deletes it with its nodes, as an operation: every node is reset as
cluster.reset does (its agent removed), their keys and records deleted, and last the cluster
itself. Deleting the cluster deletes its operations' records with it, this one's too, so that
stage comes last: the executor returns what the record would have said, and a follower answers
`{deleted: NAME}` (status.vanished). A failed node stage leaves the cluster; the same command
resumes. The cluster's `reset_enabled` does not gate this: force and confirm do.
"""

import shutil

from kubesalt.master.errors import Refused
from kubesalt.master.inventory import orphans
from kubesalt.master.ops import context, launch, reset
from kubesalt.master.trust import cluster_secrets

# How many node ids a refusal names before it counts the rest.
NAMED = 5


def start(store, layout, cluster, conf_dir, force=False, confirm=False, spawn=True):
    """Delete `cluster` at once (None), or start the operation that deletes it with its
    nodes, or resume its failed one (the operation record); Refused changes nothing."""
    record, views = context.cluster_and_nodes(store, layout, cluster)
    _refuse_while_running(store, cluster)
    if force and not confirm:
        raise Refused.one("confirm", f"cluster.delete force=True resets every node of {cluster}, "
                                     "removes kubesalt from them and deletes their keys; run "
                                     f"salt-run cluster.delete {cluster} force=True "
                                     "confirm=True")
    stray = sorted(orphans.of_cluster(store, layout.pki_dir, cluster))
    if not views and not stray:
        delete_now(store, layout, cluster)
        return None
    if not force:
        raise Refused.one("name", _still_there(cluster, views, stray))
    stages, params = reset.planned(store, record.spec, views, "delete")
    if "orphans" not in params:  # a resumed delete keeps its own
        params = {**params, "nodes": sorted(params["nodes"] + stray), "orphans": stray}
    return launch.start(store, layout, conf_dir, cluster, "delete", stages, params=params,
                        spawn=spawn)


def _refuse_while_running(store, cluster):
    active = [op for op in store.operations(cluster) if op["state"] in ("queued", "running")]
    if not active:
        return
    op = active[-1]
    if op["kind"] == "delete":
        raise Refused.one("name", f"{cluster} is being deleted by {op['id']}; follow it with "
                                  f"salt-run cluster.status {cluster}")
    raise Refused.one("name", f"{op['kind']} {op['id']} is running on {cluster}; stop it "
                              f"first: salt-run cluster.cancel {cluster}")


def _still_there(cluster, views, stray):
    parts = []
    if views:
        parts.append(f"{cluster} has {len(views)} enrolled node{'s' if len(views) != 1 else ''}"
                     f" ({_named([n['id'] for n in views])}); take them out first: salt-run "
                     f"cluster.reset {cluster} confirm=True, or salt-run node.remove NODE for "
                     "each")
    if stray:
        parts.append(f"the controller holds keys named for {cluster} that no node owns "
                     f"({_named(stray)}); delete them with salt-run node.forget NODE")
    parts.append(f"or delete {cluster} with its nodes: salt-run cluster.delete {cluster} "
                 "force=True confirm=True")
    return "; ".join(parts)


def _named(ids):
    shown = ", ".join(ids[:NAMED])
    return shown if len(ids) <= NAMED else f"{shown} and {len(ids) - NAMED} more"


def delete_now(store, layout, cluster):
    """Delete a cluster that has no nodes and no running operation."""
    if not store.delete_idle_cluster(cluster):
        raise Refused.one("name", f"a node or an operation of {cluster} appeared meanwhile; "
                                  f"run salt-run cluster.delete {cluster} again")
    forget_files(layout, cluster)


def delete_cluster(layout, store, op):
    """The last stage of a delete operation: the cluster's files, then its record (with its
    installers and this operation's record)."""
    forget_files(layout, op["cluster"])
    store.delete_cluster(op["cluster"])


def forget_files(layout, cluster):
    """What the controller keeps of a cluster outside its record: its CAs, join token and
    etcd certificates, and the installer files written for the REST API."""
    cluster_secrets.forget(layout, cluster)
    shutil.rmtree(layout.installers_dir / cluster, ignore_errors=True)


def warning(op):
    """What cluster.delete adds to its answer about nodes it could not reset, or None."""
    parts = [reset.unreachable_warning(op)]
    stray = op["params"].get("orphans")
    if stray:
        parts.append(f"{', '.join(stray)} had no kubesalt node record: nothing runs there "
                     "from the controller; their key is deleted but whatever runs on them "
                     "stays until conjurer -d runs there")
    return "; ".join(filter(None, parts)) or None
