"""Proxy passwords are secrets: every view of a cluster shows them as ***."""

import os
from pathlib import Path

import yaml

from kubesalt.master.inventory import clusters
from kubesalt.master.inventory.store import Store


# ---- secrets in views ---------------------------------------------------------------------

def test_proxy_passwords_are_not_shown(tmp_path):
    store = Store(tmp_path)
    proxy = {"http": "http://user:s3cret@proxy:3128", "https": "http://proxy:3128"}
    created = clusters.create(store, "edge1", proxy=proxy)
    for view in (created, clusters.show(store, "edge1"), clusters.list_(store)[0],
                 clusters.update(store, "edge1", location="x")):
        assert "s3cret" not in yaml.safe_dump(view)
        assert view["proxy"]["http"] == "http://user:***@proxy:3128"
        assert view["proxy"]["https"] == "http://proxy:3128"
    # nodes of the cluster still get the real URL through their pillar
    assert store.get_cluster("edge1")["spec"]["proxy"]["http"] == proxy["http"]
    assert os.stat(Path(tmp_path) / "kubesalt.db").st_mode & 0o077 == 0
