"""What the runners used to decide themselves, called here without a master: whether a node is
probed, configuring a node, a cluster's status, the reset's warning, a release's refusals."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master import layout as layout_mod
from kubesalt.master.errors import Refused
from kubesalt.master.inventory import artifacts, clusters, keys, nodes
from kubesalt.master.inventory.store import Store
from kubesalt.master.ops import reset, status

GRAINS = {
    "cpuarch": "x86_64", "os": "Debian",
    "kubesalt_interfaces": [{"name": "eth0", "ipv4": ["10.0.0.5"], "up": True}],
    "kubesalt_storage_candidates": [],
}
# key directory of Salt's key store -> the node status it gives
KEY_DIRS = {"minions": "APPROVED", "minions_pre": "DISCOVERED",
            "minions_rejected": "REJECTED"}


def _public_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def pub():
    return _public_key()


@pytest.fixture
def world(tmp_path, pub):
    """A cluster `c` with nodes n-minions, n-minions_pre, n-minions_rejected (keys where
    their names say) and n-none (enrolled, no key yet)."""
    layout = layout_mod.Layout.for_root(tmp_path / "root")
    store = Store(layout.state_dir)
    clusters.create(store, "c")
    for number, key_dir in enumerate((*KEY_DIRS, None)):
        node_id = f"n-{key_dir or 'none'}"
        store.enroll_node(node_id, "c", keys.spki_sha256(pub), f"serial-{number}",
                          f"10.0.0.{number + 1}")
        if key_dir:
            (layout.pki_dir / key_dir).mkdir(parents=True, exist_ok=True)
            (layout.pki_dir / key_dir / node_id).write_bytes(pub)
    return store, layout.pki_dir


@pytest.mark.parametrize("node_id,reason", [
    ("n-minions", None),
    ("n-minions_pre", "DISCOVERED"),
    ("n-minions_rejected", "REJECTED"),
    ("n-none", "ENROLLED"),
    ("n-stranger", "not an enrolled node"),
])
def test_only_enrolled_accepted_nodes_are_probed(world, node_id, reason):
    store, pki_dir = world
    assert nodes.probe_refusal(store, pki_dir, node_id) == reason


def test_a_mismatched_key_is_not_probed(world):
    store, pki_dir = world
    (pki_dir / "minions" / "n-minions").write_bytes(_public_key())
    assert nodes.probe_refusal(store, pki_dir, "n-minions") == "KEY_MISMATCH"


def test_configure_stores_and_returns_the_configuration(world):
    store, pki_dir = world
    config = nodes.configure(store, pki_dir, "n-minions", GRAINS, "master", "eth0", None)
    assert config == {"roles": ["master", "worker"], "interface": "eth0",
                      "address": "10.0.0.5", "storage_devices": []}
    assert store.get_node("n-minions")["config"] == config


@pytest.mark.parametrize("node_id,grains,message", [
    ("n-minions_pre", GRAINS, "n-minions_pre is DISCOVERED; only APPROVED nodes are configured"),
    ("n-minions", {}, "n-minions has not been probed yet; wait for it to connect"),
    ("n-stranger", GRAINS, "no node 'n-stranger' has enrolled; see salt-run node.list"),
])
def test_configure_refuses_nodes_it_cannot_configure(world, node_id, grains, message):
    store, pki_dir = world
    with pytest.raises(Refused) as exc:
        nodes.configure(store, pki_dir, node_id, grains, "worker", "eth0", None)
    assert exc.value.errors == [{"field": "node", "message": message}]


def test_configure_refuses_a_bad_configuration_and_stores_nothing(world):
    store, pki_dir = world
    before = store.get_node("n-minions")["config"]
    with pytest.raises(Refused) as exc:
        nodes.configure(store, pki_dir, "n-minions", GRAINS, "worker", "eth9", None)
    assert [e["field"] for e in exc.value.errors] == ["interface"]
    assert store.get_node("n-minions")["config"] == before


def _operation(store, op_id, states):
    store.create_operation(op_id, "c", "provision",
                           [{"name": name, "title": name, "nodes": ["n-minions"], "skip": ""}
                            for name in states], lambda pid: True)
    for name, state in states.items():
        if state != "pending":
            store.stage_started(op_id, name)
        if state in ("done", "failed"):
            store.stage_finished(op_id, name, state == "done",
                                 error="boom" if state == "failed" else None)
    if "failed" in states.values():
        store.finish_operation(op_id, False, error="boom", failed_stage="etcd")


def test_cluster_status_shows_the_last_operation_or_every_one(world):
    store, _ = world
    shown = status.cluster_status(store, "c")
    assert shown == {"cluster": "c", "state": "CREATED", "operation": None,
                     "health": {"state": "unknown", "since": shown["health"]["since"],
                                "reason": "no node of the cluster has an accepted key",
                                "problems": []}}
    _operation(store, "op-1", {"os": "done", "etcd": "failed"})
    _operation(store, "op-2", {"os": "done", "etcd": "pending"})
    last = status.cluster_status(store, "c")["operation"]
    assert last["operation"] == "op-2"
    assert [(s["stage"], s["state"]) for s in last["stages"]] == [("os", "done"),
                                                                  ("etcd", "pending")]
    every = status.cluster_status(store, "c", history=True)["operations"]
    assert [(o["operation"], o["state"], o["failed_stage"]) for o in every] == [
        ("op-1", "failed", "etcd"), ("op-2", "queued", None)]
    assert every[0]["stages"][1]["error"] == "boom"


def test_cluster_status_of_an_unknown_cluster_is_a_field_error(world):
    store, _ = world
    with pytest.raises(Refused) as exc:
        status.cluster_status(store, "nope")
    assert exc.value.errors == [{"field": "name", "message": "no cluster named 'nope'; see "
                                                             "salt-run cluster.list"}]


def test_a_started_operation_answers_its_stages_at_once(world):
    store, _ = world
    store.create_operation("op-1", "c", "provision", [
        {"name": "os", "title": "os", "nodes": [], "skip": ""},
        {"name": "cni", "title": "cni", "nodes": [], "skip": "not needed"}],
        lambda pid: True)
    assert status.started(store, store.operation("op-1"), False, 10, print) == {
        "operation": "op-1", "cluster": "c", "kind": "provision", "state": "queued",
        "stages": ["os"]}


@pytest.mark.parametrize("params,warning", [
    ({"nodes": ["a"], "unreachable": []}, None),
    ({"nodes": ["a"]}, None),
    ({"nodes": ["a", "b", "c"], "unreachable": ["b", "c"]},
     "b, c never had an accepted key: nothing runs there; their key and record are deleted "
     "but their agent stays until conjurer -d runs on them"),
])
def test_reset_warns_about_nodes_it_cannot_reach(params, warning):
    assert reset.unreachable_warning({"params": params}) == warning


@pytest.mark.parametrize("version,arch,fields", [
    ("0.1", "amd64", ["version"]),
    ("0.1", "sparc", ["version", "arch"]),
    ("1.30", "sparc", ["arch"]),
])
def test_a_release_not_in_the_matrix_or_store_is_refused(version, arch, fields):
    with pytest.raises(Refused) as exc:
        artifacts.release(version, arch)
    assert [e["field"] for e in exc.value.errors] == fields


def test_a_release_resolves_a_minor_version_to_its_newest_patch():
    matrix, release = artifacts.release("1.30", "arm64")
    assert release in matrix.k8s_versions
    assert release.startswith("1.30.")
