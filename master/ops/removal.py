"""Removing one node from its cluster: drained (from a master that stays), its etcd member
removed first when it is a master, reset like a cluster reset does, deleted from Kubernetes and
forgotten (key, record).

Refused when the cluster would break: its only master, a master whose removal leaves etcd below
quorum of the members it has now, or the last worker of a dedicated-master cluster.
"""

from kubesalt.master.trust import cluster_secrets
from kubesalt.master.ops import context, launch
from kubesalt.master.inventory import nodes as nodes_mod
from kubesalt.master.inventory import orphans
from kubesalt.master.ops import plan
from kubesalt.master.errors import Refused
from kubesalt.master.inventory.store import NotFound

NEVER_JOINED = "the node never joined Kubernetes"
# node.remove's answer for a node whose key was never accepted: it is forgotten at once.
NEVER_ACCEPTED = ("its key was never accepted: nothing ran on it; run conjurer -d there to "
                  "remove kubesalt's agent")


def check(spec, views, node_id):
    """The node's view, or Refused saying why removing it would break the cluster."""
    node = next(n for n in views if n["id"] == node_id)
    members = context.members(views)
    if node not in members:
        return node
    masters = [n for n in members if "master" in n["config"]["roles"]]
    if "master" in node["config"]["roles"]:
        if len(masters) <= 1:
            raise Refused.one("node", f"{node_id} is the only master of {spec.name}; reset "
                                      "the cluster instead (cluster.reset)")
        quorum = len(masters) // 2 + 1
        if len(masters) - 1 < quorum:
            raise Refused.one("node", f"removing {node_id} would leave {len(masters) - 1} of "
                                      f"{len(masters)} etcd members, below quorum ({quorum}); "
                                      "add a master first")
    elif spec.dedicated_master:
        workers = [n for n in members if "master" not in n["config"]["roles"]]
        if len(workers) <= 1:
            raise Refused.one("node", f"{node_id} is the last worker of {spec.name}, whose "
                                      "masters take no workloads; add a worker first")
    return node


def start(store, layout, node_id, conf_dir, drain=True, forget=None, spawn=True):
    """Validate and start removing `node_id`; returns the operation record. A node whose key
    was never accepted runs nothing: it is forgotten at once (`forget(ids)` deletes keys) and
    None is returned."""
    try:
        cluster = store.get_node(node_id)["cluster"]
    except NotFound:
        raise orphans.unknown_node(layout.pki_dir, node_id) from None
    record, views = context.cluster_and_nodes(store, layout, cluster)
    spec = record.spec
    failed = launch.last_failed(store, cluster, "remove-node")
    earlier = launch.earlier_work(failed) if failed and failed["params"]["node"] == node_id \
        else None
    node = check(spec, views, node_id)
    if node["status"] not in ("APPROVED", *nodes_mod.PHASES):
        forget([node_id])
        store.remove_node(node_id)
        return None
    stays = context.join_order(n for n in context.members(views) if n["id"] != node_id)
    stages = plan.resolve(spec, [{"id": n["id"], "config": n["config"]} for n in stays],
                          earlier=earlier, kind="remove-node",
                          removed={"id": node_id, "config": node["config"]})
    for stage in stages:
        if stage["skip"]:
            continue
        if node["status"] == "APPROVED" and stage["name"] in ("drain", "etcd-member",
                                                              "delete-node"):
            stage["skip"] = NEVER_JOINED
        elif stage["name"] == "drain" and not drain:
            stage["skip"] = "drain=False"
    return launch.start(store, layout, conf_dir, cluster, "remove-node", stages,
                        params={"node": node_id, "drain": bool(drain)}, spawn=spawn)


def forget_node(store, op, layout, delete_keys):
    """The controller's stage of a removal: the node's key, record and etcd certificate."""
    node_id = op["params"]["node"]
    delete_keys([node_id])
    try:
        store.remove_node(node_id)
    except NotFound:
        pass
    cluster_secrets.forget_etcd_member(layout, op["cluster"], node_id)
