"""What a health check concludes, as plain functions of what it saw.

A node is `healthy`, `disconnected` (its agent did not answer the controller), `not-ready`
(Kubernetes does not report it Ready) or `unknown` (provisioned, but no master's API answered
to say). A cluster is `healthy`, `degraded` (some node is not: the `problems` name which and
since when), `down` (no node's agent answered) or `unknown` (no node has an accepted key yet).
"""

HEALTHY, DISCONNECTED, NOT_READY, UNKNOWN = "healthy", "disconnected", "not-ready", "unknown"
DEGRADED, DOWN = "degraded", "down"
# Nodes Kubernetes knows: provisioned ones, also while an upgrade works on them.
IN_KUBERNETES = ("READY", "UPGRADING")

NO_ANSWER = "its agent did not answer the controller"
NO_API = "the Kubernetes API did not answer through any master"
NOT_A_NODE = "Kubernetes has no node by this name"
NO_NODES = "no node of the cluster has an accepted key"


def node_states(nodes, answered, readiness):
    """{node id: (state, reason)} of `nodes` (views of nodes with accepted keys: id, status).
    `answered`: ids whose agent answered; `readiness`: {Kubernetes node name: {"ready":
    "True"|"False"|"Unknown", "reason"}} as a master's API reported it, or None when none
    could."""
    states = {}
    for node in nodes:
        node_id = node["id"]
        if node_id not in answered:
            states[node_id] = (DISCONNECTED, NO_ANSWER)
        elif node["status"] not in IN_KUBERNETES:
            states[node_id] = (HEALTHY, None)
        elif readiness is None:
            states[node_id] = (UNKNOWN, NO_API)
        elif node_id not in readiness:
            states[node_id] = (NOT_READY, NOT_A_NODE)
        elif readiness[node_id].get("ready") != "True":
            found = readiness[node_id]
            reason = f"Kubernetes reports Ready={found.get('ready')}"
            if found.get("reason"):
                reason += f" ({found['reason']})"
            states[node_id] = (NOT_READY, reason)
        else:
            states[node_id] = (HEALTHY, None)
    return states


def cluster_state(states):
    """(state, detail) of a cluster from its nodes' `states` (node_states)."""
    if not states:
        return UNKNOWN, {"reason": NO_NODES, "problems": []}
    problems = [{"node": node_id, "state": state, "reason": reason}
                for node_id, (state, reason) in sorted(states.items()) if state != HEALTHY]
    if all(state == DISCONNECTED for state, _ in states.values()):
        return DOWN, {"reason": "no node's agent answered the controller", "problems": problems}
    if problems:
        names = ", ".join(f"{p['node']} {p['state']}" for p in problems)
        return DEGRADED, {"reason": names, "problems": problems}
    return HEALTHY, {"reason": None, "problems": []}


def with_since(cluster_health, node_health):
    """A stored cluster health with each problem's `since` (when its node's state began)."""
    if cluster_health is None:
        return None
    problems = [{**p, "since": (node_health.get(p["node"]) or {}).get("since")}
                for p in cluster_health.get("problems") or []]
    return {**cluster_health, "problems": problems}
