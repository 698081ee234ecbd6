"""Operator verbs for nodes: list, show, approve, reject, configure, remove, forget, logs (and
the reactor's probe).

    salt-run node.list cluster=edge1 status=DISCOVERED search=10-77 sort=-created
    salt-run node.approve node-1a2b3c4d-10-77-0-11-edge1
    salt-run node.configure NODE roles=master,storage storage_devices=/dev/sdb interface=eth0
    salt-run node.remove NODE wait=True
    salt-run node.forget NODE
    salt-run node.logs NODE lines=200

Status is derived from Salt's key store and the controller's enrollment records; facts come
from the minion data cache (kubesalt_facts grains, synced when the node connects).
"""

import functools

from kubesalt.master.inventory import agent_logs
from kubesalt.master.inventory import nodes
from kubesalt.master.inventory import orphans
from kubesalt.master.ops import removal
from kubesalt.master.verbs import saltcalls
from kubesalt.master.verbs import support

__virtualname__ = "node"
__func_alias__ = {"list_": "list"}


def __virtual__():
    return __virtualname__


@support.verb
def list_(cluster=None, status=None, search=None, sort="hostname", limit=None, offset=0):
    """Enrolled nodes with their status, and without a cluster filter the keys no node owns
    (ORPHANED, see node.forget); filter by cluster, status or search text (a substring or
    glob of id, cluster, status, address); sort by hostname, status, created or cluster
    (prefix - to reverse); a page of `limit` rows from `offset` on."""
    store = support.store(__opts__)
    return nodes.list_nodes(store, support.pki_dir(__opts__),
                            cluster=cluster, status=status, search=search, sort=sort,
                            connected_ids=saltcalls.connected_ids(__opts__),
                            health=store.node_health(), limit=limit, offset=offset)


@support.verb
def show(node):
    """One node with every probed fact."""
    store = support.store(__opts__)
    _, shown = nodes.get(store, support.pki_dir(__opts__), node,
                         saltcalls.cached_grains(__opts__, node),
                         node in saltcalls.connected_ids(__opts__), store.node_health())
    return shown


@support.verb
def approve(node):
    """Accept a DISCOVERED node's key: it joins its cluster and gets probed."""
    nodes.check_approvable(support.store(__opts__), support.pki_dir(__opts__), node)
    saltcalls.accept_key(__opts__, node)
    saltcalls.fire_node(__opts__, node, "APPROVED")
    return {"node": node, "status": "APPROVED"}


@support.verb
def reject(node):
    """Reject a node's key: it can run nothing from the controller."""
    nodes.check_rejectable(support.store(__opts__), support.pki_dir(__opts__), node)
    saltcalls.reject_key(__opts__, node)
    saltcalls.fire_node(__opts__, node, "REJECTED")
    return {"node": node, "status": "REJECTED"}


@support.verb
def configure(node, roles=None, interface=None, storage_devices=None):
    """Set a node's roles (master, worker, storage), network interface and storage devices,
    validated against its probed facts and its cluster's type."""
    config = nodes.configure(support.store(__opts__), support.pki_dir(__opts__), node,
                             saltcalls.cached_grains(__opts__, node), roles, interface,
                             storage_devices)
    saltcalls.fire_node(__opts__, node, "CONFIGURED", config)
    return {"node": node, "config": config}


@support.verb
def remove(node, drain=True, wait=False, timeout=3600):
    """Take a node out of its cluster: drained (unless drain=False) and deleted from
    Kubernetes, its etcd member removed first when it is a master, kubeadm reset and what
    provisioning installed removed, kubesalt's agent removed, its key and record deleted.
    Refused for a cluster's only master, below etcd quorum, or for the last worker of a
    dedicated cluster. A node whose key was never accepted is forgotten at once."""
    store = support.store(__opts__)
    op = removal.start(store, support.layout(__opts__), node, support.conf_dir(__opts__),
                       drain=drain, forget=functools.partial(saltcalls.delete_keys, __opts__))
    if op is None:
        saltcalls.fire_node(__opts__, node, "REMOVED")
        return {"node": node, "removed": True, "note": removal.NEVER_ACCEPTED}
    return support.started(__context__, store, op, wait, timeout,
                           saltcalls.progress(globals()))


@support.verb
def forget(node):
    """Delete a key no kubesalt node owns (node.list shows it ORPHANED): left by an earlier
    version or by a minion that contacted the controller without enrolling. Anything on that
    machine stays: run conjurer -d there. A node with a record is removed with node.remove."""
    key_state = orphans.check_forgettable(support.store(__opts__), support.pki_dir(__opts__),
                                          node)
    saltcalls.delete_keys(__opts__, [node])
    saltcalls.fire_node(__opts__, node, "FORGOTTEN")
    return {"node": node, "forgotten": True, "key": key_state}


@support.verb
def logs(node, lines=agent_logs.DEFAULT_LINES):
    """The last lines of the node's kubesalt agent log
    (/opt/kubesalt/salt/var/log/salt/minion), read through the controller: at most 1000
    lines and 64 KiB. Read-only; the node must be approved (its agent takes commands)."""
    agent_logs.check_lines(lines)
    agent_logs.check_readable(support.store(__opts__), support.pki_dir(__opts__), node)
    answer = saltcalls.agent_log(__opts__, node, lines, agent_logs.MAX_BYTES)
    return agent_logs.from_answer(node, answer, lines)


@support.verb
def probe(node_id):
    """Sync kubesalt's modules and grains to an approved node (the reactor calls this when a
    minion starts). Trusts nothing from the event: only enrolled, accepted nodes are probed."""
    reason = nodes.probe_refusal(support.store(__opts__), support.pki_dir(__opts__), node_id)
    if reason:
        return {"probed": False, "reason": reason}
    result = saltcalls.probe(__opts__, node_id)
    if result["probed"]:
        saltcalls.fire_node(__opts__, node_id, "PROBED")
    return result
