"""What an operation issues before its states run: the cluster's CAs and join secrets, and an
etcd certificate for every master. Issued here, by the executor, so that rendering a node's
pillar reads secrets and never writes them."""

from kubesalt.master.inventory import keys
from kubesalt.master.trust import cluster_secrets

# The operations whose states read the cluster's secrets from the pillar.
KINDS = ("provision", "upgrade")


def prepare(layout, store, cluster):
    """Issue the cluster's secrets and its masters' etcd member certificates (each kept and
    reused; reissued when a master's address changed) for the nodes whose enrolled key is
    accepted, the same nodes the pillar serves."""
    cluster_secrets.ensure(layout, cluster)
    states = keys.key_states(layout.pki_dir)
    for node in store.list_nodes(cluster):
        config = node["config"]
        if not config or "master" not in config["roles"]:
            continue
        if keys.state_for(states.get(node["id"]), node["pub_sha256"]) == "accepted":
            cluster_secrets.ensure_etcd_member(layout, cluster, node["id"], config["address"])
