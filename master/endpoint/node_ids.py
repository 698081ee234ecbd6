"""Is a node id free for the node that asks to enroll under it?

A Salt minion id names one key in the master's key store. A second key under the same id (a
customer's own salt-minion configured with it, another machine, or this machine after its
agent and key were removed) would make the enrollment fail only after conjurer had installed
the agent and renamed the host, so conjurer asks first (`/v1/installer/check`), naming the key
it already holds when it runs again: the same id with the same key is a rerun and passes.

What a refusal says depends on who asks. The asker holds this cluster's installer, so it
learns which node it collides with only when that node is of its own cluster; of anything
else only that a key with this id is pending, accepted or rejected on the controller.
"""

from kubesalt.master.inventory import keys
from kubesalt.master.inventory.store import NotFound

# The state a refusal names when one id has keys in several (Salt allows that).
_ORDER = ("accepted", "pending", "rejected", "denied")


def refusal(store, pki_dir, cluster, node_id, fingerprint):
    """None when `node_id` is free for the node holding the key `fingerprint` (SPKI sha256;
    None when it holds none yet), else (reason, message)."""
    entries = keys.key_states(pki_dir).get(node_id) or []
    own = [state for state, digest in entries if fingerprint and digest == fingerprint]
    others = [state for state, digest in entries if not fingerprint or digest != fingerprint]
    if not others:
        if any(state in ("rejected", "denied") for state in own):
            return "rejected", (
                f"{node_id} was rejected by an operator; it enrolls again only once an "
                f"operator deletes its key on the controller (salt-run node.remove {node_id})")
        return None
    state = next(s for s in _ORDER if s in others)
    if _cluster_of(store, node_id) == cluster:
        return "id-in-use", (
            f"{node_id} is already a node of cluster {cluster} with another key ({state} on "
            "the controller): this machine enrolled before and its agent was removed since, "
            "or another machine has the same /etc/machine-id and address. Remove that node on "
            f"the controller first (salt-run node.remove {node_id}, or node.forget {node_id} "
            "when its agent is gone) and run conjurer again; a cloned machine needs its own "
            "machine id first (rm /etc/machine-id; systemd-machine-id-setup)")
    return "id-in-use", (
        f"a key with the id {node_id} is already {state} on the controller and it is not "
        "this node's: another salt-minion uses this id (a customer's minion, or another "
        "machine). If that key is stale, an operator deletes it on the controller (salt-run "
        f"node.forget {node_id}); otherwise give that minion another id; then run conjurer "
        "again")


def _cluster_of(store, node_id):
    try:
        return store.get_node(node_id)["cluster"]
    except NotFound:
        return None
