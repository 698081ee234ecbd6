"""One health check of a cluster: ask its nodes' agents, ask Kubernetes through a master that
answered, store the result and say what changed (for events). The Salt side comes in as
`probe` (master/verbs/saltcalls.HealthProbe): answering(ids) -> ids that answered,
readiness(master id) -> {node: {"ready", "reason"}} or None."""

from pathlib import Path

import yaml

from kubesalt.master import tree
from kubesalt.master.health import assess
from kubesalt.master.inventory import nodes as nodes_mod


def check(store, pki_dir, probe, cluster, now=None):
    """Check `cluster` now; returns the changes store.record_health reports."""
    views = [v for v in nodes_mod.list_nodes(store, pki_dir, cluster=cluster)
             if v["status"] == "APPROVED" or v["status"] in nodes_mod.PHASES]
    answered = set(probe.answering([v["id"] for v in views])) if views else set()
    readiness = None
    for master in _masters_to_ask(views, answered):
        readiness = probe.readiness(master)
        if readiness is not None:
            break
    states = assess.node_states(views, answered, readiness)
    state, detail = assess.cluster_state(states)
    return store.record_health(cluster, state, detail, states, now=now)


def _masters_to_ask(views, answered):
    """Provisioned masters whose agent answered, when any node is in Kubernetes at all."""
    if not any(v["status"] in assess.IN_KUBERNETES for v in views):
        return []
    return [v["id"] for v in views if v["id"] in answered
            and v["status"] in assess.IN_KUBERNETES
            and "master" in ((v.get("config") or {}).get("roles") or [])]


def report(store, cluster):
    """What cluster.health answers: the cluster's health with its nodes'."""
    cluster_health, node_health = views(store)
    ids = [n["id"] for n in store.list_nodes(cluster)]
    return {"cluster": cluster, **(cluster_health.get(cluster) or {}),
            "checked_at": store.health_checked_at(cluster),
            "nodes": {i: node_health[i] for i in ids if i in node_health}}


def views(store):
    """(clusters' health with problems' since, nodes' health) as the views show them: what
    changes only when a state does (not each check's time), so two reads agree."""
    node_health = store.node_health()
    return ({name: assess.with_since(health, node_health)
             for name, health in store.cluster_health().items()}, node_health)


def kubectl_command(defaults=None):
    """kubectl with the admin kubeconfig on a master, as the states install them (map.jinja's
    kubectl_cmd from the formula's defaults.yaml)."""
    defaults = Path(defaults or tree.states_dir() / "kubesalt" / "defaults.yaml")
    paths = yaml.safe_load(defaults.read_text())["paths"]
    return [f"{paths['bin_dir']}/kubectl", "--kubeconfig", paths["admin_kubeconfig"]]
