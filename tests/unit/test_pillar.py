"""A node's pillar: secrets by role as a table over the pure function, then the records-reading
shell on a real store and key store: other clusters, other keys, no side effects."""

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master import layout as layout_mod
from kubesalt.master.inventory import clusters, keys
from kubesalt.master.inventory import spec as spec_mod
from kubesalt.master.inventory.store import Store
from kubesalt.master.ops import certificates
from kubesalt.master.ops import pillar as node_pillar
from kubesalt.master.trust import cluster_secrets

SECRETS = {"token": "tok", "ca_cert_hash": "sha256:ab", "kubernetes_ca_cert": "K8S-CA",
           "kubernetes_ca_key": "K8S-CA-KEY", "certificate_key": "CERT-KEY",
           "etcd_ca_cert": "ETCD-CA"}
SPEC = spec_mod.ClusterSpec(name="c", k8s_version="1.30.10", ha=True, dedicated_master=True)


def record(node_id, *roles, address="10.0.0.9"):
    return {"id": node_id, "config": {"roles": list(roles), "interface": "eth0",
                                      "address": address,
                                      "storage_devices": ["/dev/sdb"] if "storage" in roles
                                      else []}}


MEMBERS = [record("w1", "worker", "storage", address="10.0.0.4"),
           record("m2", "master", address="10.0.0.2"), record("m1", "master", address="10.0.0.1")]
MEMBER_KEY = {"m1": "ETCD-KEY-m1", "m2": "ETCD-KEY-m2"}


def pillar_of(node, secrets=SECRETS, issued=True):
    member = (f"ETCD-CERT-{node['id']}", MEMBER_KEY[node["id"]]) \
        if issued and node["id"] in MEMBER_KEY else None
    return node_pillar.node_pillar(SPEC, node, MEMBERS, versions={}, artifacts={},
                                   secrets=secrets, etcd_member=member)


@pytest.mark.parametrize(("node_id", "kubeadm_keys", "etcd", "storage_nodes"), [
    ("m1", {"token", "ca_cert_hash", "ca_cert", "ca_key", "certificate_key"}, True, True),
    ("m2", {"token", "ca_cert_hash", "ca_cert", "ca_key", "certificate_key"}, True, False),
    ("w1", {"token", "ca_cert_hash", "ca_cert"}, False, False),
])
def test_secrets_by_role(node_id, kubeadm_keys, etcd, storage_nodes):
    node = next(n for n in MEMBERS if n["id"] == node_id)
    pillar = pillar_of(node)
    assert set(pillar["kubeadm"]) == kubeadm_keys
    assert ("etcd" in pillar) is etcd
    assert ("storage_nodes" in pillar) is storage_nodes
    assert pillar["node"]["first_master"] is (node_id == "m1")
    assert [m["id"] for m in pillar["masters"]] == ["m1", "m2"]
    others = [key for member, key in MEMBER_KEY.items() if member != node_id]
    assert not any(key in repr(pillar) for key in others), "another member's etcd key"
    if etcd:
        assert pillar["etcd"]["key"] == MEMBER_KEY[node_id]
        assert pillar["etcd"]["initial_cluster"] == ("m1=https://10.0.0.1:2380,"
                                                     "m2=https://10.0.0.2:2380")
    if storage_nodes:
        assert pillar["storage_nodes"] == [{"id": "w1", "devices": ["/dev/sdb"]}]


def test_no_secrets_before_the_first_operation_and_no_etcd_before_its_certificate():
    master = MEMBERS[2]
    assert "kubeadm" not in pillar_of(master, secrets=None)
    unissued = pillar_of(master, issued=False)
    assert "etcd" not in unissued and "ca_key" in unissued["kubeadm"]


def test_an_unconfigured_node_gets_only_its_cluster():
    pillar = pillar_of({"id": "n9", "config": None})
    assert set(pillar) == {"cluster", "versions", "artifacts"}
    assert pillar["cluster"]["type"] == "dedicated-multi-master"


# ---- build: the records-reading shell -------------------------------------------------------

def _public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def site(tmp_path):
    layout = layout_mod.Layout.for_root(tmp_path / "root")
    store = Store(layout.state_dir)
    accepted = layout.pki_dir / "minions"
    accepted.mkdir(parents=True)
    for number, (cluster, node_id, roles) in enumerate(
            [("a", "a-m1", ["master"]), ("a", "a-w1", ["worker"]), ("b", "b-m1", ["master"])]):
        if cluster not in [c["name"] for c in store.list_clusters()]:
            clusters.create(store, cluster)
        pub = _public_key()
        (accepted / node_id).write_bytes(pub)
        address = f"10.0.0.{number + 1}"
        store.enroll_node(node_id, cluster, keys.spki_sha256(pub), f"s-{node_id}", address)
        store.set_node_config(node_id, {"roles": roles, "interface": "eth0", "address": address,
                                        "storage_devices": []})
    return store, layout


def _tree(path):
    return {p.relative_to(path): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_build_serves_a_node_its_own_cluster_and_writes_nothing(site):
    store, layout = site
    certificates.prepare(layout, store, "a")
    secrets_dir = layout.state_dir / "clusters"
    before = _tree(secrets_dir)
    first = node_pillar.build(store, layout, "a-m1")["kubesalt"]
    assert node_pillar.build(store, layout, "a-m1")["kubesalt"] == first
    assert _tree(secrets_dir) == before, "a render issued or changed a secret"
    assert [m["id"] for m in first["masters"]] == ["a-m1"] and "etcd" in first
    assert "b-m1" not in repr(first)
    assert "kubeadm" not in node_pillar.build(store, layout, "b-m1")["kubesalt"]


def test_build_gives_nothing_to_an_unknown_minion_or_another_key(site):
    store, layout = site
    assert node_pillar.build(store, layout, "stranger") == {}
    (layout.pki_dir / "minions" / "a-w1").write_bytes(_public_key())
    assert node_pillar.build(store, layout, "a-w1") == {}


def test_a_master_gets_etcd_only_once_the_executor_issued_its_certificate(site):
    store, layout = site
    cluster_secrets.ensure(layout, "a")
    assert "etcd" not in node_pillar.build(store, layout, "a-m1")["kubesalt"]
    certificates.prepare(layout, store, "a")
    assert "etcd" in node_pillar.build(store, layout, "a-m1")["kubesalt"]
