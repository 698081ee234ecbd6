"""What one node's pillar holds: its own cluster's configuration, its own role, and the secrets
its role needs — nothing of other clusters, nothing secret about other nodes.

Secrets by role: the bootstrap token and CA hash go to nodes of the cluster that join or init;
the Kubernetes CA key, the certificate key and etcd TLS to masters only; each etcd member gets
only its own key. The layout of the result is the contract in states/README.md.

`node_pillar` decides (pure; tests/unit/test_pillar.py and the render matrix call it);
`build` reads the records for it (the ext_pillar calls it). Neither issues anything: the
operation's executor issues the certificates first (ops/certificates.py).
"""

from kubesalt.master.inventory import artifacts as artifacts_mod
from kubesalt.master.inventory import keys
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.inventory.store import NotFound
from kubesalt.master.ops import context
from kubesalt.master.trust import cluster_secrets

CONTROL_PLANE_ENDPOINT = "control-plane.service.consul:6443"


def node_pillar(spec, node, members, *, versions, artifacts, secrets=None, etcd_member=None):
    """The `kubesalt` pillar of `node` (its record) in the cluster of `spec` (a ClusterSpec).
    `members` are the cluster's configured nodes whose keys are accepted, `secrets` the
    cluster's (cluster_secrets.load) or None before the first operation, `etcd_member` this
    node's etcd (certificate, key) or None while not issued."""
    cluster = {
        "name": spec.name, "type": spec.cluster_type, "ha": spec.ha,
        "dedicated_master": spec.dedicated_master, "k8s_version": spec.k8s_version,
        "cni": spec.cni, "pod_subnet": spec.pod_subnet, "service_subnet": spec.service_subnet,
        "proxy": spec.to_dict()["proxy"], "blueprint": spec.blueprint,
        "storage": spec.storage, "labels": spec.labels,
        "control_plane_endpoint": CONTROL_PLANE_ENDPOINT,
    }
    pillar = {"cluster": cluster, "versions": versions, "artifacts": artifacts}
    config = node["config"]
    if not config:
        return pillar
    masters = [n for n in context.join_order(members) if "master" in n["config"]["roles"]]
    is_master = "master" in config["roles"]
    pillar["node"] = {
        "id": node["id"], "roles": config["roles"], "interface": config["interface"],
        "address": config["address"], "storage_devices": config["storage_devices"],
        "first_master": context.first_master(members) == node["id"],
    }
    pillar["masters"] = [{"id": m["id"], "address": m["config"]["address"]} for m in masters]
    if secrets is not None:
        kubeadm = {"token": secrets["token"], "ca_cert_hash": secrets["ca_cert_hash"],
                   "ca_cert": secrets["kubernetes_ca_cert"]}
        if is_master:
            kubeadm["ca_key"] = secrets["kubernetes_ca_key"]
            kubeadm["certificate_key"] = secrets["certificate_key"]
        if is_master and etcd_member is not None:
            cert, key = etcd_member
            pillar["etcd"] = {
                "initial_cluster": ",".join(f"{m['id']}=https://{m['config']['address']}:2380"
                                            for m in masters),
                "endpoints": [f"https://{m['config']['address']}:2379" for m in masters],
                "ca_cert": secrets["etcd_ca_cert"], "cert": cert, "key": key,
            }
        pillar["kubeadm"] = kubeadm
    if pillar["node"]["first_master"]:
        pillar["storage_nodes"] = [
            {"id": n["id"], "devices": n["config"]["storage_devices"]}
            for n in members if "storage" in n["config"]["roles"]]
    return pillar


def build(store, layout, minion_id, matrix=None):
    """{"kubesalt": node_pillar(...)} for `minion_id` from the records, or {} for a minion
    that is not an enrolled node presenting the key it enrolled with."""
    matrix = matrix or matrix_mod.default()
    try:
        node = store.get_node(minion_id)
    except NotFound:
        return {}
    states = keys.key_states(layout.pki_dir)

    def accepted(record):
        # Only the key a node enrolled with counts: another key under the same id is not it.
        return keys.state_for(states.get(record["id"]), record["pub_sha256"]) == "accepted"

    if not accepted(node):
        return {}
    spec = store.cluster(node["cluster"]).spec
    members = [n for n in store.list_nodes(spec.name) if n["config"] and accepted(n)]
    secrets = cluster_secrets.load(layout, spec.name)
    config = node["config"]
    etcd_member = None
    if secrets is not None and config and "master" in config["roles"]:
        etcd_member = cluster_secrets.etcd_member(layout, spec.name, minion_id,
                                                  config["address"])
    return {"kubesalt": node_pillar(
        spec, node, members,
        versions=artifacts_mod.component_versions(matrix, spec.k8s_version),
        artifacts=artifacts_mod.pillar_entries(layout.artifacts_dir, matrix, spec.k8s_version),
        secrets=secrets, etcd_member=etcd_member)}
