"""Cluster and node health (master/health): what a check concludes from the agents' answers
and Kubernetes' node readiness, what it stores (a state keeps the time it began) and which
changes it reports for events."""

from kubesalt.master.health import assess, check
from kubesalt.master.inventory import clusters, nodes
from tests.unit.test_context import ready_cluster

ROLES = {"m1": ["master"], "m2": ["master"], "w1": ["worker"]}
READY = {"ready": "True", "reason": "KubeletReady"}


class FakeProbe:
    """What the nodes' agents and a master's API answer, and who was asked."""

    def __init__(self, answering, readiness):
        self.up, self.ready = set(answering), readiness
        self.asked = []

    def answering(self, ids):
        return self.up & set(ids)

    def readiness(self, master):
        self.asked.append(master)
        return self.ready(master) if callable(self.ready) else self.ready


def test_a_disconnected_agent_wins_over_what_kubernetes_still_says():
    views = [{"id": "m1", "status": "READY"}, {"id": "w1", "status": "READY"},
             {"id": "w2", "status": "APPROVED"}]
    states = assess.node_states(views, {"m1", "w2"}, {"m1": READY, "w1": READY})
    assert states == {"m1": ("healthy", None), "w1": ("disconnected", assess.NO_ANSWER),
                      "w2": ("healthy", None)}


def test_kubernetes_readiness_of_provisioned_nodes():
    views = [{"id": n, "status": "READY"} for n in ("m1", "w1", "w2")]
    readiness = {"m1": READY, "w1": {"ready": "Unknown", "reason": "NodeStatusUnknown"}}
    states = assess.node_states(views, {"m1", "w1", "w2"}, readiness)
    assert states["w1"] == ("not-ready", "Kubernetes reports Ready=Unknown (NodeStatusUnknown)")
    assert states["w2"] == ("not-ready", assess.NOT_A_NODE)
    assert assess.node_states(views, {"m1", "w1"}, None)["w1"] == ("unknown", assess.NO_API)


def test_cluster_state():
    assert assess.cluster_state({})[0] == "unknown"
    assert assess.cluster_state({"m1": ("healthy", None)}) == \
        ("healthy", {"reason": None, "problems": []})
    state, detail = assess.cluster_state({"m1": ("disconnected", "x"), "w1": ("unknown", "y")})
    assert state == "degraded" and detail["reason"] == "m1 disconnected, w1 unknown"
    assert [p["node"] for p in detail["problems"]] == ["m1", "w1"]
    assert assess.cluster_state({"m1": ("disconnected", "x"),
                                 "w1": ("disconnected", "x")})[0] == "down"


def test_check_asks_a_master_that_answered_and_stores_since(tmp_path):
    store, layout = ready_cluster(tmp_path, ROLES)
    probe = FakeProbe({"m1", "m2", "w1"}, {n: READY for n in ROLES})
    assert sorted(check.check(store, layout.pki_dir, probe, "c", now=100.0)) == [
        ("cluster", "c", "unknown", "healthy"), ("node", "m1", None, "healthy"),
        ("node", "m2", None, "healthy"), ("node", "w1", None, "healthy")]
    assert probe.asked == ["m1"]

    # m1 powered off: m2's API tells about the others; only what changed is reported
    probe.up.discard("m1")
    changes = check.check(store, layout.pki_dir, probe, "c", now=130.0)
    assert sorted(changes) == [("cluster", "c", "healthy", "degraded"),
                               ("node", "m1", "healthy", "disconnected")]
    assert probe.asked == ["m1", "m2"]
    assert check.check(store, layout.pki_dir, probe, "c", now=160.0) == []
    report = check.report(store, "c")
    assert report["state"] == "degraded" and report["since"] == 130.0
    assert report["checked_at"] == 160.0 and "checked_at" not in check.views(store)[0]["c"]
    assert report["problems"] == [{"node": "m1", "state": "disconnected",
                                   "reason": assess.NO_ANSWER, "since": 130.0}]
    assert report["nodes"]["m2"]["since"] == 100.0

    # back: healthy again, from then on
    probe.up.add("m1")
    assert sorted(check.check(store, layout.pki_dir, probe, "c", now=190.0)) == [
        ("cluster", "c", "degraded", "healthy"), ("node", "m1", "disconnected", "healthy")]
    assert check.report(store, "c")["since"] == 190.0


def test_a_master_whose_api_does_not_answer_is_passed_over(tmp_path):
    store, layout = ready_cluster(tmp_path, ROLES)
    probe = FakeProbe({"m1", "m2", "w1"}, lambda master: None if master == "m1" else
                      {"m1": READY, "m2": READY, "w1": {"ready": "False", "reason": None}})
    check.check(store, layout.pki_dir, probe, "c", now=1.0)
    assert probe.asked == ["m1", "m2"]
    assert check.report(store, "c")["problems"] == [
        {"node": "w1", "state": "not-ready", "reason": "Kubernetes reports Ready=False",
         "since": 1.0}]


def test_no_master_answering_leaves_readiness_unknown_and_nothing_reached_is_down(tmp_path):
    store, layout = ready_cluster(tmp_path, ROLES)
    probe = FakeProbe({"w1"}, {n: READY for n in ROLES})
    check.check(store, layout.pki_dir, probe, "c", now=1.0)
    assert probe.asked == []
    assert check.views(store)[1]["w1"]["state"] == "unknown"
    probe.up.clear()
    check.check(store, layout.pki_dir, probe, "c", now=2.0)
    assert check.report(store, "c")["state"] == "down"


def test_views_show_health_and_a_cluster_not_checked_yet(tmp_path):
    store, layout = ready_cluster(tmp_path, ROLES)
    cluster_health, node_health = check.views(store)
    assert clusters.show(store, "c", health=cluster_health)["health"]["state"] == "unknown"
    check.check(store, layout.pki_dir, FakeProbe(set(ROLES), {n: READY for n in ROLES}), "c")
    cluster_health, node_health = check.views(store)
    assert clusters.list_(store, health=cluster_health)[0]["health"]["state"] == "healthy"
    listed = nodes.list_nodes(store, layout.pki_dir, health=node_health)
    assert {n["id"]: n["health"]["state"] for n in listed} == dict.fromkeys(ROLES, "healthy")
    # a removed node's health goes with it
    store.remove_node("w1")
    assert "w1" not in store.node_health()


def test_kubectl_command_is_the_formulas():
    assert check.kubectl_command() == ["/usr/local/bin/kubectl", "--kubeconfig",
                                       "/etc/kubernetes/admin.conf"]
