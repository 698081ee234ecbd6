"""Keys no node record owns, without a master: node.list shows them ORPHANED, node.forget may
delete only them, and node.remove of such an id names node.forget."""

import pytest

from kubesalt.master import layout as layout_mod
from kubesalt.master.errors import Refused
from kubesalt.master.inventory import clusters, keys, nodes, orphans
from kubesalt.master.inventory.store import Store
from kubesalt.master.ops import removal
from tests.unit.keyfiles import public_key, put_key

NODE = "node-0a1b2c3d-10-0-0-1-edge"
STRAY = "node-0a1b2c3d-10-0-0-2-gone"


@pytest.fixture(scope="module")
def pub():
    return public_key()


@pytest.fixture
def world(tmp_path, pub):
    """Cluster edge with node NODE (accepted); STRAY's key accepted with no record, and a
    pending key "minion-x" that never enrolled."""
    layout = layout_mod.Layout.for_root(tmp_path / "root")
    store = Store(layout.state_dir)
    clusters.create(store, "edge")
    store.enroll_node(NODE, "edge", keys.spki_sha256(pub), "serial", "10.0.0.1")
    put_key(layout, "minions", NODE, pub)
    put_key(layout, "minions", STRAY, pub)
    put_key(layout, "minions_pre", "minion-x", pub)
    return store, layout


def test_node_list_shows_keys_no_node_owns_as_orphaned(world):
    store, layout = world
    rows = nodes.list_nodes(store, layout.pki_dir)
    assert [(r["id"], r["status"], r.get("key")) for r in rows] == [
        ("minion-x", "ORPHANED", "pending"), (NODE, "APPROVED", None),
        (STRAY, "ORPHANED", "accepted")]
    assert f"salt-run node.forget {STRAY}" in rows[2]["hint"]
    assert [r["id"] for r in nodes.list_nodes(store, layout.pki_dir, status="orphaned")] == \
        ["minion-x", STRAY]
    assert [r["id"] for r in nodes.list_nodes(store, layout.pki_dir, cluster="edge")] == [NODE]
    # no cluster and no enrollment time: sorting by either never compares None with a value
    for sort in ("cluster", "-cluster", "created", "-created", "status"):
        assert len(nodes.list_nodes(store, layout.pki_dir, sort=sort)) == 3


def test_node_list_pages_the_sorted_rows(world):
    store, layout = world
    ids = [r["id"] for r in nodes.list_nodes(store, layout.pki_dir)]
    pages = [[r["id"] for r in nodes.list_nodes(store, layout.pki_dir, limit=2, offset=start)]
             for start in (0, 2, 4)]
    assert pages == [ids[:2], ids[2:], []]
    assert [r["id"] for r in nodes.list_nodes(store, layout.pki_dir, offset=1)] == ids[1:]
    assert [r["id"] for r in nodes.list_nodes(store, layout.pki_dir, sort="-hostname",
                                              limit=1)] == ids[-1:]


def test_forget_takes_only_a_key_no_node_owns(world):
    store, layout = world
    assert orphans.check_forgettable(store, layout.pki_dir, STRAY) == "accepted"
    assert orphans.check_forgettable(store, layout.pki_dir, "minion-x") == "pending"
    with pytest.raises(Refused) as refused:
        orphans.check_forgettable(store, layout.pki_dir, NODE)
    assert refused.value.errors == [{"field": "node", "message": (
        f"{NODE} is a node of cluster edge; take it out with salt-run node.remove {NODE}")}]
    with pytest.raises(Refused) as refused:
        orphans.check_forgettable(store, layout.pki_dir, "nobody")
    assert refused.value.errors[0]["field"] == "node"
    assert "holds no key named 'nobody'" in refused.value.errors[0]["message"]


def test_remove_and_show_of_an_orphaned_key_name_node_forget(world, tmp_path):
    store, layout = world
    with pytest.raises(Refused) as refused:
        removal.start(store, layout, STRAY, tmp_path, spawn=False)
    assert refused.value.errors == [{"field": "node", "message": (
        f"no node {STRAY!r} has enrolled with kubesalt, but the controller holds its "
        f"accepted key; delete it with salt-run node.forget {STRAY}")}]
    with pytest.raises(Refused) as refused:
        nodes.get(store, layout.pki_dir, "minion-x")
    assert "pending key; delete it with salt-run node.forget minion-x" in \
        refused.value.errors[0]["message"]
    with pytest.raises(Refused) as refused:
        removal.start(store, layout, "nobody", tmp_path, spawn=False)
    assert refused.value.errors[0]["message"] == \
        "no node 'nobody' has enrolled; see salt-run node.list"


@pytest.mark.parametrize(("node_id", "cluster"), [
    ("node-0a1b2c3d-10-0-0-1-edge", "edge"),
    ("node-0a1b2c3d-10-0-0-1-b-edge", "b-edge"),
    ("node-0a1b2c3d-fd00--1-edge", "edge"),
    ("node-0a1b2c3d-10-0-0-1-other", None),
    ("minion-x", None),
])
def test_a_key_is_named_for_the_longest_cluster_name_it_ends_with(node_id, cluster):
    assert orphans.named_for(node_id, ["edge", "b-edge", "dge"]) == cluster


def test_node_list_pages_are_whole_numbers_from_either_door():
    # salt-run's words reach the runner as text or YAML values; the REST API's schema says the
    # same bounds
    from kubesalt.master.verbs import args as runner_args

    assert runner_args.as_count("limit", "50") == 50
    assert runner_args.as_count("offset", "0", least=0) == 0
    for value, least in (("0", 1), ("-1", 0), ("1.5", 0), (True, 0)):
        with pytest.raises(Refused):
            runner_args.as_count("offset", value, least=least)


def test_a_page_larger_than_the_most_is_refused(world):
    store, layout = world
    with pytest.raises(Refused) as refused:
        nodes.list_nodes(store, layout.pki_dir, limit=nodes.MAX_PAGE + 1)
    assert refused.value.errors[0]["field"] == "limit"
