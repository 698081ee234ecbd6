"""The render matrix: OS families, cluster types, CNIs, proxy on/off and node roles, and the
pillar the controller's ext_pillar would hand each node (the contract in states/README.md).
Which SLS a node renders comes from the provisioning plan itself, so a stage added to the
plan is rendered here without touching this file."""

import hashlib

from kubesalt.master.inventory import spec as spec_mod
from kubesalt.master.ops import pillar as node_pillar
from kubesalt.master.ops import plan

OS_GRAINS = {
    "Debian": {"os": "Debian", "os_family": "Debian", "osrelease": "12",
               "osmajorrelease": 12, "oscodename": "bookworm"},
    "Ubuntu": {"os": "Ubuntu", "os_family": "Debian", "osrelease": "22.04",
               "osmajorrelease": 22, "oscodename": "jammy"},
    "RedHat": {"os": "Rocky", "os_family": "RedHat", "osrelease": "9.4",
               "osmajorrelease": 9, "oscodename": "Blue Onyx"},
    "Suse": {"os": "SUSE", "os_family": "Suse", "osrelease": "15.6",
             "osmajorrelease": 15, "oscodename": "openSUSE Leap 15.6"},
}

CLUSTER_TYPES = {
    # type: (dedicated_master, ha)
    "converged-single-master": (False, False),
    "dedicated-single-master": (True, False),
    "converged-multi-master": (False, True),
    "dedicated-multi-master": (True, True),
}
CNIS = ("calico", "cilium")
PROXIES = (False, True)

# Values that must never show up where Salt logs or returns them.
SECRETS = {
    "token": "kbsalt.0123456789abcdef",
    "ca_key": "-----BEGIN PRIVATE KEY-----\nS3CR3T-KUBERNETES-CA-KEY\n-----END PRIVATE KEY-----\n",
    "certificate_key": "c0ffee" * 10 + "abcd",
    "etcd_key": "-----BEGIN PRIVATE KEY-----\nS3CR3T-ETCD-MEMBER-KEY\n-----END PRIVATE KEY-----\n",
    "proxy_password": "pr0xyPa55",
}
CA_HASH = "sha256:" + "ab" * 32
POD_SUBNET = "10.244.0.0/16"
SERVICE_SUBNET = "10.96.0.0/12"
ENDPOINT = "control-plane.service.consul:6443"
VERSIONS = {"kubernetes": "1.30.10", "containerd": "1.7.25", "runc": "1.2.5", "etcd": "3.5.15",
            "crictl": "1.30.1", "cni_plugins": "1.5.1", "calico": "3.28.3",
            "cilium": "1.16.7", "cert_manager": "1.15.5", "consul": "1.19.2",
            "rook_ceph": "1.14.12"}
ARTIFACTS = ("kubeadm", "kubelet", "kubectl", "containerd", "runc", "crictl", "cni_plugins",
             "etcd", "consul", "calico_manifest", "cilium_manifest", "cert_manager_manifest",
             "rook_ceph_manifests")


def _pem(text):
    return f"-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----\n"


def nodes_of(cluster_type):
    """The nodes of one cluster of this type, first master first: (id, roles, address)."""
    dedicated, ha = CLUSTER_TYPES[cluster_type]
    masters = 3 if ha else 1
    nodes = []
    for i in range(masters):
        roles = ["master"] if dedicated or i else ["master", "storage"]
        nodes.append((f"node-m{i}", roles, f"10.77.0.{11 + i}"))
    nodes.append(("node-w0", ["worker"], "10.77.0.21"))
    nodes.append(("node-s0", ["worker", "storage"], "10.77.0.22"))
    return nodes


def role_name(node_id, roles, first):
    if "master" in roles:
        return "first master" if first else "other master"
    return "storage" if "storage" in roles else "worker"


def pillar_for(cluster_type, cni, proxy, node_id):
    """What the controller's pillar function hands this node, built by that function itself
    from a cluster spec, node records and stand-in secrets."""
    dedicated, ha = CLUSTER_TYPES[cluster_type]
    records = [{"id": i, "config": {"roles": r, "interface": "host0", "address": a,
                                    "storage_devices": ["/dev/loop3"] if "storage" in r else []}}
               for i, r, a in nodes_of(cluster_type)]
    proxy_settings = None
    if proxy:
        proxy_settings = spec_mod.Proxy(
            http=f"http://user:{SECRETS['proxy_password']}@proxy.example:3128",
            https=f"http://user:{SECRETS['proxy_password']}@proxy.example:3128",
            no_proxy="example.internal,10.0.0.0/8", root_ca=_pem("PROXY-ROOT-CA"))
    spec = spec_mod.ClusterSpec(
        name="edge1", k8s_version=VERSIONS["kubernetes"], ha=ha, dedicated_master=dedicated,
        cni=cni, pod_subnet=POD_SUBNET, service_subnet=SERVICE_SUBNET, proxy=proxy_settings)
    secrets = {"token": SECRETS["token"], "ca_cert_hash": CA_HASH,
               "kubernetes_ca_cert": _pem("KUBERNETES-CA"), "kubernetes_ca_key": SECRETS["ca_key"],
               "certificate_key": SECRETS["certificate_key"], "etcd_ca_cert": _pem("ETCD-CA")}
    pillar = node_pillar.node_pillar(
        spec, next(n for n in records if n["id"] == node_id), records,
        versions=dict(VERSIONS),
        artifacts={name: {"source": f"salt://kubesalt-artifacts/{name}",
                          "sha256": hashlib.sha256(name.encode()).hexdigest()}
                   for name in ARTIFACTS},
        secrets=secrets, etcd_member=(_pem(f"ETCD-MEMBER-{node_id}"), SECRETS["etcd_key"]))
    # what the executor passes day-2 steps: the node an upgrade drains or a removal takes
    # out (a master for remove_member, a worker for the rest makes no difference to rendering)
    return {"kubesalt": pillar, "kubesalt_op": {"node": "node-w0", "drain": True}}


def node_grains(os_name, node_id, address):
    return {**OS_GRAINS[os_name], "id": node_id, "kernel": "Linux", "osarch": "amd64",
            "cpuarch": "x86_64", "ip4_interfaces": {"lo": ["127.0.0.1"], "host0": [address]},
            "swap_total": 0, "shell": "/bin/sh",
            "dns": {"ip4_nameservers": ["10.77.0.1"], "nameservers": ["10.77.0.1"],
                    "search": ["lab.example"], "options": []}}


DRAIN_SLS = ("kubesalt.kubeadm.drain", "kubesalt.kubeadm.uncordon")


def stage_sls(nodes):
    """{node id: [sls, ...]} every plan (provision, upgrade, reset, node removal) applies to
    each node of this cluster; a removal takes out the last node."""
    records = [{"id": i, "config": {"roles": r}} for i, r, _ in nodes]
    out = {i: [] for i, _, _ in nodes}
    for stages in plan.PLANS.values():
        for stage in stages:
            if not stage.sls:
                continue
            targets = plan.select(records, stage.targets, removed=records[-1]["id"])
            applied = [(t, stage.sls) for t in targets]
            if stage.drain and targets:
                applied += [(records[0]["id"], sls) for sls in DRAIN_SLS]
            for target, sls in applied:
                if sls not in out[target]:
                    out[target].append(sls)
    return out


def configurations(os_name):
    """Every (cluster type, cni, proxy, node id, role, grains, pillar, [sls]) for one OS."""
    for cluster_type in CLUSTER_TYPES:
        nodes = nodes_of(cluster_type)
        sls_by_node = stage_sls(nodes)
        first = nodes[0][0]
        for cni in CNIS:
            for proxy in PROXIES:
                for node_id, roles, address in nodes:
                    yield {
                        "os": os_name, "type": cluster_type, "cni": cni, "proxy": proxy,
                        "node": node_id, "role": role_name(node_id, roles, node_id == first),
                        "grains": node_grains(os_name, node_id, address),
                        "pillar": pillar_for(cluster_type, cni, proxy, node_id),
                        "sls": sls_by_node[node_id],
                    }
