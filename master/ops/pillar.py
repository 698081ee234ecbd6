"""What one node's pillar holds: its own cluster's configuration, its own role, and the secrets
its role needs — nothing of other clusters, nothing secret about other nodes.

Secrets by role: the bootstrap token and CA hash go to nodes of the cluster that join or init;
the Kubernetes CA key, the certificate key and etcd TLS to masters only; each etcd member gets
only its own key. The layout of the result is the contract in states/README.md.
"""

from kubesalt.master.inventory import artifacts
from kubesalt.master.trust import cluster_secrets
from kubesalt.master.inventory import keys
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.inventory import spec as spec_mod
from kubesalt.master.inventory.store import NotFound
from kubesalt.master.ops import context

CONTROL_PLANE_ENDPOINT = "control-plane.service.consul:6443"


def _approved(store, layout, cluster):
    states = keys.key_states(layout.pki_dir)
    return [n for n in store.list_nodes(cluster)
            if keys.state_for(states.get(n["id"]), n["pub_sha256"]) == "accepted"]


def build(store, layout, minion_id, matrix=None):
    matrix = matrix or matrix_mod.default()
    try:
        node = store.get_node(minion_id)
    except NotFound:
        return {}
    states = keys.key_states(layout.pki_dir)
    # Only the key the node enrolled with gets its pillar: a minion presenting another key
    # under the same id is not this node.
    if keys.state_for(states.get(minion_id), node["pub_sha256"]) != "accepted":
        return {}
    record = store.get_cluster(node["cluster"])
    spec = spec_mod.ClusterSpec.from_dict(record["spec"])
    cluster = {
        "name": spec.name, "type": spec.cluster_type, "ha": spec.ha,
        "dedicated_master": spec.dedicated_master, "k8s_version": spec.k8s_version,
        "cni": spec.cni, "pod_subnet": spec.pod_subnet, "service_subnet": spec.service_subnet,
        "proxy": spec.to_dict()["proxy"], "blueprint": spec.blueprint,
        "storage": spec.storage, "labels": spec.labels,
        "control_plane_endpoint": CONTROL_PLANE_ENDPOINT,
    }
    versions = artifacts.component_versions(matrix, spec.k8s_version)
    pillar = {"cluster": cluster, "versions": versions,
              "artifacts": artifacts.pillar_entries(layout.artifacts_dir, matrix,
                                                    spec.k8s_version)}
    config = node["config"]
    if not config:
        return {"kubesalt": pillar}
    configured = [n for n in _approved(store, layout, spec.name) if n["config"]]
    masters = [n for n in context.join_order(configured) if "master" in n["config"]["roles"]]
    is_master = "master" in config["roles"]
    pillar["node"] = {
        "id": minion_id, "roles": config["roles"], "interface": config["interface"],
        "address": config["address"], "storage_devices": config["storage_devices"],
        "first_master": context.first_master(configured) == minion_id,
    }
    pillar["masters"] = [{"id": m["id"], "address": m["config"]["address"]} for m in masters]
    secrets_data = cluster_secrets.load(layout, spec.name)
    if secrets_data is not None:
        kubeadm = {"token": secrets_data["token"], "ca_cert_hash": secrets_data["ca_cert_hash"],
                   "ca_cert": secrets_data["kubernetes_ca_cert"]}
        if is_master:
            kubeadm["ca_key"] = secrets_data["kubernetes_ca_key"]
            kubeadm["certificate_key"] = secrets_data["certificate_key"]
            cert, key = cluster_secrets.ensure_etcd_member(layout, spec.name, minion_id,
                                                           config["address"])
            pillar["etcd"] = {
                "initial_cluster": ",".join(f"{m['id']}=https://{m['config']['address']}:2380"
                                            for m in masters),
                "endpoints": [f"https://{m['config']['address']}:2379" for m in masters],
                "ca_cert": secrets_data["etcd_ca_cert"], "cert": cert, "key": key,
            }
        pillar["kubeadm"] = kubeadm
    if pillar["node"]["first_master"]:
        pillar["storage_nodes"] = [
            {"id": n["id"], "devices": n["config"]["storage_devices"]}
            for n in configured if "storage" in n["config"]["roles"]]
    return {"kubesalt": pillar}
