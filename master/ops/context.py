"""What every operation starts from: its cluster's record and node views, and the one order in
which nodes join (masters first, each group by id). Provisioning, upgrade, removal and the
pillar's first master all take that order from here."""

from kubesalt.master.errors import Refused
from kubesalt.master.inventory import keys
from kubesalt.master.inventory import nodes as nodes_mod
from kubesalt.master.inventory.store import NotFound
from kubesalt.master.ops.plan import roles
from kubesalt.master.ops import lease


def cluster_and_nodes(store, layout, cluster):
    """The Cluster (typed spec, state) and its node views, for the verbs that start
    operations. Operations whose executor died are reaped first."""
    try:
        record = store.cluster(cluster)
    except NotFound:
        raise Refused.one("name", f"no cluster named {cluster!r}") from None
    store.reap_operations(cluster, lease.alive)
    states = keys.key_states(layout.pki_dir)
    views = [nodes_mod.view(n, keys.state_for(states.get(n["id"]), n["pub_sha256"]))
             for n in store.list_nodes(cluster)]
    return record, views


def join_order(nodes):
    """Node records or views in join order: masters, then the others, each group by id.
    Reads `nodes` once, so a generator is as good as a list."""
    return sorted(nodes, key=lambda n: ("master" not in roles(n), n["id"]))


def first_master(nodes):
    """The id of the master that initialises the control plane, or None without a master."""
    ordered = join_order(nodes)
    return ordered[0]["id"] if ordered and "master" in roles(ordered[0]) else None


def members(views):
    """The configured node views that are provisioned or being provisioned."""
    return [n for n in views if n["config"] and n["status"] in nodes_mod.PHASES]
