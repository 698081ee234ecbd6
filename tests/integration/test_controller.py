"""The controller foundation against a real salt-master started by kubesalt-controller."""

import os
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from .controller import BIN

pytestmark = pytest.mark.integration


def test_status_reports_running_ports_and_fingerprint(controller):
    code, status = controller.status()
    assert code == 0
    assert status["running"] is True
    assert status["ret_port"] == controller.ret_port
    assert status["publish_port"] == controller.publish_port
    assert len(status["master_fingerprint"].split(":")) == 32


def test_config_is_self_contained_under_root(controller):
    master = yaml.safe_load((controller.conf_dir / "master").read_text())
    assert master["root_dir"] == str(controller.root)
    kubesalt = yaml.safe_load((controller.conf_dir / "master.d" / "kubesalt.conf").read_text())
    assert kubesalt["kubesalt"]["state_dir"].startswith(str(controller.root))
    for key in ("file_roots", "pillar_roots", "runner_dirs", "ext_pillar", "reactor"):
        assert key in kubesalt
    assert (controller.root / "etc" / "salt" / "pki" / "master" / "master.pub").exists()
    assert (controller.root / "var" / "log" / "salt" / "master").exists()


def test_create_with_defaults_only(controller):
    created = controller.run_ok("cluster.create", "defaults1")
    shown = controller.run_ok("cluster.show", "defaults1")
    assert shown == created
    assert shown["k8s_version"] == "1.31.6"  # newest in the matrix
    assert shown["type"] == "converged-single-master"
    assert shown["nodes_required"]["total"] == 1
    assert shown["pod_subnet"] == "10.244.0.0/16"
    assert shown["service_subnet"] == "10.96.0.0/12"
    assert shown["cni"] == "calico"
    assert shown["installer_ttl_days"] == 365
    assert shown["blueprint"] == "default-upstream"
    assert shown["storage"] == "rook-ceph"
    assert shown["auto_approve"] is False and shown["reset_enabled"] is False
    assert shown["components"]["containerd"]


@pytest.mark.parametrize("ha,dedicated,kind,total", [
    ("False", "True", "dedicated-single-master", 2),
    ("True", "False", "converged-multi-master", 3),
    ("True", "True", "dedicated-multi-master", 4),
])
def test_cluster_types(controller, ha, dedicated, kind, total):
    name = f"t-{kind[:9]}-{total}"
    shown = controller.run_ok("cluster.create", name, f"ha={ha}",
                              f"dedicated_master={dedicated}")
    assert shown["type"] == kind
    assert shown["nodes_required"]["total"] == total


def test_create_with_every_option(controller):
    shown = controller.run_ok(
        "cluster.create", "full1", "k8s_version=1.29", "os=ubuntu-22.04",
        "blueprint=default-upstream", "location=edge-dc-7", "labels={env: prod, tier: edge}",
        "auto_approve=True", "installer_ttl_days=30", "cni=cilium",
        "pod_subnet=10.50.0.0/16", "service_subnet=10.60.0.0/16", "reset_enabled=True",
        'proxy={http: "http://proxy.example:3128", https: "http://proxy.example:3128", '
        'no_proxy: "10.0.0.0/8,.svc,localhost"}')
    assert shown["k8s_version"] == "1.29.14"
    assert shown["labels"] == {"env": "prod", "tier": "edge"}
    assert shown["proxy"]["no_proxy"] == "10.0.0.0/8,.svc,localhost"
    assert shown["cni"] == "cilium"
    assert shown["installer_ttl_days"] == 30
    names = [c["name"] for c in controller.run_ok("cluster.list")]
    assert "full1" in names


BAD_INPUTS = [
    (["Bad_Name"], "name"),
    (["ok1", "k8s_version=1.12"], "k8s_version"),
    (["ok1", "os=windows-11"], "os"),
    (["ok1", "pod_subnet=10.244.0.0/33"], "pod_subnet"),
    (["ok1", "pod_subnet=10.244.0.1/16"], "pod_subnet"),
    (["ok1", "service_subnet=10.244.0.0/20"], "service_subnet"),  # overlaps the pod subnet
    (["ok1", "pod_subnet=127.0.0.0/16"], "pod_subnet"),
    (["ok1", "service_subnet=127.1.0.0/16"], "service_subnet"),
    (["ok1", "proxy={http: 'ftp://proxy:21'}"], "proxy.http"),
    (["ok1", "proxy={https: 'not a url'}"], "proxy.https"),
    (["ok1", "cni=cilium", "os=centos-7"], "cni"),
    (["ok1", "os=rhel-7", "cni=cilium"], "cni"),
    (["ok1", "cni=flannel"], "cni"),
    (["ok1", "storage=longhorn"], "storage"),
    (["ok1", "installer_ttl_days=-5"], "installer_ttl_days"),
    (["ok1", "labels={'bad key!': x}"], "labels.bad key!"),
    (["dup1"], "name"),  # duplicate name
]


@pytest.mark.parametrize("args,field", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_refused_and_nothing_stored(controller, args, field):
    if args == ["dup1"]:
        controller.run("cluster.create", "dup1")
    before = controller.run_ok("cluster.list")
    code, out = controller.run("cluster.create", *args)
    assert code != 0
    assert field in [e["field"] for e in out["errors"]], out
    assert all(e["message"] for e in out["errors"])
    assert controller.run_ok("cluster.list") == before


def test_update_allowed_and_refused(controller):
    controller.run_ok("cluster.create", "upd1", "labels={a: '1'}")
    shown = controller.run_ok("cluster.update", "upd1", "labels={b: '2'}", "location=rack-4",
                              "auto_approve=True", "reset_enabled=True",
                              "blueprint_version=1.0.0")
    assert shown["labels"] == {"a": "1", "b": "2"}
    assert shown["location"] == "rack-4"
    assert shown["auto_approve"] is True and shown["reset_enabled"] is True
    assert shown["blueprint_version"] == "1.0.0"
    before = controller.run_ok("cluster.show", "upd1")
    for change in ("pod_subnet=10.1.0.0/16", "service_subnet=10.2.0.0/16", "cni=cilium",
                   "proxy={http: 'http://p:3128'}"):
        code, out = controller.run("cluster.update", "upd1", change)
        assert code != 0
        assert "cannot be changed once the cluster is created" in out["errors"][0]["message"]
    code, out = controller.run("cluster.update", "upd1", "k8s_version=1.30")
    assert code != 0 and "cluster.upgrade" in out["errors"][0]["message"]
    assert controller.run_ok("cluster.show", "upd1") == before


def test_concurrent_label_updates_are_all_kept(controller):
    controller.run_ok("cluster.create", "conc1")

    def add_label(i):
        proc = subprocess.run(
            [str(BIN / "salt-run"), "-c", str(controller.conf_dir), "--out=json",
             "cluster.update", "conc1", f"labels={{l{i}: v{i}}}"],
            capture_output=True, text=True, timeout=180)
        return proc.returncode

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(add_label, range(20)))
    assert codes == [0] * 20
    labels = controller.run_ok("cluster.show", "conc1")["labels"]
    assert labels == {f"l{i}": f"v{i}" for i in range(20)}


def test_installer_writes_secret_files_and_command(controller, tmp_path):
    controller.run_ok("cluster.create", "inst1", "installer_ttl_days=10")
    out = controller.run_ok("cluster.installer", "inst1", f"dest={tmp_path}")
    pem = tmp_path / "inst1.pem"
    passfile = tmp_path / "inst1-passphrase.txt"
    for path in (pem, passfile):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert out["command"] == ("sudo ./conjurer -edge-name=inst1 "
                              "-passphrase-file=inst1-passphrase.txt -creds-file=inst1.pem")
    passphrase = passfile.read_text().strip()
    assert passphrase not in str(out)
    from kubesalt.minion_bootstrap import credentials

    creds = credentials.open_credentials(pem.read_text(), passphrase, "inst1")
    assert creds.cluster == "inst1"
    _, status = controller.status()
    assert creds.controller["master_finger"] == status["master_fingerprint"]
    assert creds.controller["ret_port"] == controller.ret_port
    # a second call issues new secrets; both are recorded as valid
    out2 = controller.run_ok("cluster.installer", "inst1", f"dest={tmp_path / 'second'}")
    assert out2["serial"] != out["serial"]
    assert (tmp_path / "second" / "inst1-passphrase.txt").read_text().strip() != passphrase


def test_delete(controller):
    controller.run_ok("cluster.create", "del1")
    assert controller.run_ok("cluster.delete", "del1") == {"deleted": "del1"}
    code, out = controller.run("cluster.show", "del1")
    assert code != 0 and out["errors"][0]["field"] == "name"


def test_records_survive_restart_and_init_rerun(controller, tmp_path):
    controller.run_ok("cluster.create", "persist1", "labels={keep: me}")
    controller.run_ok("cluster.installer", "persist1", f"dest={tmp_path}")
    before = controller.run_ok("cluster.list")
    _, status_before = controller.status()
    controller.stop()
    code, status = controller.status()
    assert code != 0 and status["running"] is False
    controller.init()  # re-running init keeps keys and records
    controller.start()
    _, status_after = controller.status()
    assert status_after["master_fingerprint"] == status_before["master_fingerprint"]
    assert controller.run_ok("cluster.list") == before
    from kubesalt.master.inventory.store import Store

    store = Store(controller.root / "var" / "lib" / "kubesalt")
    assert len(store.valid_installer_serials("persist1")) == 1
