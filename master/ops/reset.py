"""Resetting a cluster: every node back to what it was before kubesalt (kubeadm reset, the
provisioning states undone, kubesalt's agent removed), the nodes' keys and records deleted,
installer credentials revoked and the cluster's secrets dropped. The cluster object and its
settings stay: new installer credentials enroll nodes again and provisioning starts over.

Destructive, so two gates: the cluster's `reset_enabled` setting, and `confirm=True`.
"""

from kubesalt.master.trust import cluster_secrets
from kubesalt.master.ops import context, launch
from kubesalt.master.inventory import nodes as nodes_mod
from kubesalt.master.ops import plan
from kubesalt.master.errors import Refused


def start(store, layout, cluster, conf_dir, confirm=False, spawn=True):
    """Validate and start resetting `cluster` (or resume its failed reset); returns the
    operation record."""
    record, views = context.cluster_and_nodes(store, layout, cluster)
    spec = record.spec
    if not spec.reset_enabled:
        raise Refused.one("reset_enabled", f"resetting {cluster} is disabled; enable it first: "
                                           f"salt-run cluster.update {cluster} "
                                           "reset_enabled=True")
    if not confirm:
        raise Refused.one("confirm", f"cluster.reset removes Kubernetes and kubesalt from every "
                                     f"node of {cluster} and deletes their keys; run salt-run "
                                     f"cluster.reset {cluster} confirm=True")
    stages, params = planned(store, spec, views, "reset")
    return launch.start(store, layout, conf_dir, cluster, "reset", stages, params=params,
                        spawn=spawn)


def planned(store, spec, views, kind):
    """(stages, params) of an operation of `kind` that resets the nodes of `views` (a reset,
    or a delete with its nodes): the failed one's again when the cluster's last operation is
    a failed `kind`, which then resumes. params: the nodes whose key and record go at the end
    (`nodes`), and those of them whose key was never accepted (`unreachable`)."""
    failed = launch.last_failed(store, spec.name, kind)
    if failed:
        params, earlier = failed["params"], launch.earlier_work(failed)
    else:
        # Only nodes whose key is accepted run states; the others are forgotten at the end.
        params = {"nodes": sorted(n["id"] for n in views),
                  "unreachable": sorted(n["id"] for n in views if not _accepted(n))}
        earlier = None
    reachable = [{"id": n["id"], "config": n["config"]} for n in views
                 if n["id"] in params["nodes"] and _accepted(n)]
    return plan.resolve(spec, reachable, earlier=earlier, kind=kind), params


def forget_nodes(store, op, layout, delete_keys):
    """The controller's stage of a reset (and of a delete, before the cluster goes): keys,
    node records, installers, secrets."""
    cluster = op["cluster"]
    ids = op["params"]["nodes"]
    delete_keys(ids)
    known = {n["id"] for n in store.list_nodes(cluster)}
    for node_id in ids:
        if node_id in known:
            store.remove_node(node_id)
    store.revoke_installers(cluster)
    cluster_secrets.forget(layout, cluster)
    if op["kind"] == "reset":  # a delete's cluster stays DELETING until it goes
        store.set_cluster_state(cluster, "CREATED")


def _accepted(view):
    return view["status"] in ("APPROVED", *nodes_mod.PHASES)


def unreachable_warning(op):
    """What cluster.reset adds to its answer when some of the nodes never had an accepted
    key, or None."""
    unreachable = op["params"].get("unreachable")
    if not unreachable:
        return None
    return (f"{', '.join(unreachable)} never had an accepted key: nothing runs there; their "
            "key and record are deleted but their agent stays until conjurer -d runs on them")
