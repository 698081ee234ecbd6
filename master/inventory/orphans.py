"""Keys in Salt's key store that no kubesalt node record owns: left by earlier versions (whose
cluster.delete kept its nodes' keys) or by a minion that contacted the controller without
enrolling. No runner manages such a key, so node.list shows it as ORPHANED and node.forget
deletes it.

Every key in that store is one kubesalt may list and delete: it is the controller's own
master's (`ROOT/etc/salt/pki/master`, or `/etc/salt/pki/master` on a host whose salt-master
`kubesalt-controller init` configured), and a customer's salt-minion beside kubesalt's agent
(`conjurer -m`) keeps its own master; only minions that contacted this controller are in it.
"""

import re

from kubesalt.master.errors import Refused
from kubesalt.master.inventory import keys
from kubesalt.master.inventory.store import NotFound

STATUS = "ORPHANED"
# The state shown for an id Salt holds in more than one list: the one that lets it do most.
PRECEDENCE = ("accepted", "pending", "rejected", "denied")


def find(store, pki_dir):
    """{minion id: key state} of every key no node record owns."""
    return unowned(keys.key_states(pki_dir), {record["id"] for record in store.list_nodes()})


def unowned(key_states, known_ids):
    """{minion id: key state} of the keys in `key_states` (keys.key_states) whose id is not
    in `known_ids`."""
    return {node_id: _strongest(entries) for node_id, entries in key_states.items()
            if node_id not in known_ids}


def _strongest(entries):
    held = {state for state, _ in entries}
    return next(state for state in PRECEDENCE if state in held)


def view(node_id, key_state, connected=None):
    """An orphaned key as node.list shows it, beside the enrolled nodes."""
    data = {"id": node_id, "hostname": node_id, "cluster": None, "status": STATUS,
            "key": key_state, "address": None, "enrolled_at": None, "config": None,
            "hint": f"no kubesalt node owns this {key_state} key; delete it with "
                    f"salt-run node.forget {node_id}"}
    if connected is not None:
        data["connected"] = connected
    return data


def named_for(node_id, cluster_names):
    """The cluster conjurer's name `node_id` (node-<8 hex>-<address, dashed>-<cluster>) ends
    with, or None. A dashed IPv6 address can swallow the start of a cluster name, so of two
    clusters that fit (edge1 and b-edge1) the longer name wins."""
    fits = [name for name in cluster_names
            if re.fullmatch(rf"node-[0-9a-f]{{8}}-[0-9a-f-]+-{re.escape(name)}", node_id)]
    return max(fits, key=len, default=None)


def of_cluster(store, pki_dir, cluster):
    """{minion id: key state} of the orphaned keys named for `cluster`."""
    names = [record["name"] for record in store.list_clusters()]
    return {node_id: state for node_id, state in find(store, pki_dir).items()
            if named_for(node_id, names) == cluster}


def check_forgettable(store, pki_dir, node_id):
    """The key state of `node_id` when node.forget may delete its key, else Refused saying
    what to do instead."""
    try:
        record = store.get_node(node_id)
    except NotFound:
        pass
    else:
        raise Refused.one("node", f"{node_id} is a node of cluster {record['cluster']}; take "
                                  f"it out with salt-run node.remove {node_id}")
    state = find(store, pki_dir).get(node_id)
    if state is None:
        raise Refused.one("node", f"the controller's key store holds no key named "
                                  f"{node_id!r}; see salt-run node.list")
    return state


def unknown_node(pki_dir, node_id):
    """The refusal for `node_id`, which no node record has: it names node.forget when Salt
    holds a key by that id."""
    entries = keys.key_states(pki_dir).get(node_id)
    if entries:
        return Refused.one("node", f"no node {node_id!r} has enrolled with kubesalt, but the "
                                   f"controller holds its {_strongest(entries)} key; delete "
                                   f"it with salt-run node.forget {node_id}")
    return Refused.one("node", f"no node {node_id!r} has enrolled; see salt-run node.list")
