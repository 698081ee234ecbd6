"""Render-matrix tests: every SLS the operation plans apply, compiled by Salt's own state
compiler for every supported OS family x cluster type x CNI x proxy on/off x node role, with
the templates its file states use rendered too. A state edit that breaks any configuration,
a requisite pointing at nothing, or a secret leaking into what Salt logs fails here."""

import itertools
import json
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from kubesalt.master.ops import lanes
from kubesalt.master.ops import plan
from tests.specs import cluster_spec

from . import matrix
from .conftest import where
from .renderer import STATES_DIR, Renderer, flatten, quiet_salt_logs

REQUISITES = ("require", "watch", "onchanges", "onfail", "prereq", "listen", "use",
              "require_in", "watch_in", "onchanges_in", "onfail_in", "prereq_in",
              "listen_in", "use_in")
SALT_LINT = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "salt-lint"


def pick(records, sls, **match):
    out = [r for r in records if r["sls"] == sls and all(r[k] == v for k, v in match.items())]
    assert out, f"no render of {sls} for {match}"
    return out


def test_matrix_covers_every_combination(records):
    seen = {(r["os"], r["type"], r["cni"], r["proxy"], r["role"]) for r in records}
    for os_name, cluster_type, cni, proxy in itertools.product(
            matrix.OS_GRAINS, matrix.CLUSTER_TYPES, matrix.CNIS, matrix.PROXIES):
        roles = {"first master", "worker", "storage"}
        if matrix.CLUSTER_TYPES[cluster_type][1]:
            roles.add("other master")
        for role in roles:
            assert (os_name, cluster_type, cni, proxy, role) in seen
    assert {r["sls"] for r in records} == {s.sls for stages in plan.PLANS.values()
                                           for s in stages if s.sls} | set(matrix.DRAIN_SLS)


def test_every_sls_renders_without_errors(records):
    failures = [f"{where(r)}: {r['errors'][0]}" for r in records if r["errors"]]
    assert not failures, f"{len(failures)} renders failed, e.g.\n" + "\n".join(failures[:5])
    empty = [where(r) for r in records if not r["states"]]
    assert not empty, f"rendered to no state: {empty[:5]}"


def broken_requisites(states):
    ids = {(s["fun"].split(".")[0], sid) for sid, s in states.items()}
    names = {(s["fun"].split(".")[0], s["args"].get("name", sid)) for sid, s in states.items()}
    ids |= {("sls", s["sls"]) for s in states.values()}
    broken = []
    for state_id, state in states.items():
        for requisite in REQUISITES:
            for entry in state["args"].get(requisite, []):
                (module, target), = entry.items()
                if (module, target) not in ids | names:
                    broken.append(f"{state_id!r} {requisite} {module}: {target!r}")
    return broken


def test_requisites_point_at_states_of_the_same_run(records):
    broken = [f"{where(r)}: {b}" for r in records for b in broken_requisites(r["states"])]
    assert not broken, "\n".join(broken[:10])


def test_templates_render_to_valid_files(records):
    parsers = {".yaml.j2": lambda text: list(yaml.safe_load_all(text)),
               ".toml.j2": tomllib.loads}
    for record in records:
        for state_id, text in record["templates"].items():
            source = record["states"][state_id]["args"]["source"]
            assert text.strip(), f"{source} rendered empty in {where(record)}"
            for suffix, parse in parsers.items():
                if source.endswith(suffix):
                    parse(text)


def _docs(record, state_id):
    return {d["kind"]: d for d in yaml.safe_load_all(record["templates"][state_id]) if d}


def test_kubeadm_init_configuration_follows_the_cluster(records):
    for record in pick(records, "kubesalt.kubeadm.init"):
        pillar = record["pillar"]["kubesalt"]
        docs = _docs(record, "Write the kubeadm init configuration")
        init, cluster = docs["InitConfiguration"], docs["ClusterConfiguration"]
        assert init["bootstrapTokens"][0]["token"] == matrix.SECRETS["token"]
        assert init["certificateKey"] == matrix.SECRETS["certificate_key"]
        assert init["nodeRegistration"]["name"] == record["node"]
        assert init["localAPIEndpoint"]["advertiseAddress"] == pillar["node"]["address"]
        taints = init["nodeRegistration"]["taints"]
        assert taints == ([{"key": "node-role.kubernetes.io/control-plane",
                            "effect": "NoSchedule"}]
                          if pillar["cluster"]["dedicated_master"] else [])
        assert cluster["networking"]["podSubnet"] == matrix.POD_SUBNET
        assert cluster["networking"]["serviceSubnet"] == matrix.SERVICE_SUBNET
        assert cluster["controlPlaneEndpoint"] == matrix.ENDPOINT
        assert cluster["kubernetesVersion"] == "v" + matrix.VERSIONS["kubernetes"]
        assert len(cluster["etcd"]["external"]["endpoints"]) == len(pillar["masters"])
        assert docs["KubeletConfiguration"]["cgroupDriver"] == "systemd"
        command = record["states"]["Initialise the control plane"]["args"]
        assert command["creates"] == "/etc/kubernetes/admin.conf"
        assert "--upload-certs" in command["name"]


@pytest.mark.parametrize("sls", ["kubesalt.kubeadm.join_control_plane",
                                 "kubesalt.kubeadm.join_worker"])
def test_kubeadm_join_configuration(records, sls):
    for record in pick(records, sls):
        join = _docs(record, "Write the kubeadm join configuration")["JoinConfiguration"]
        assert join["discovery"]["bootstrapToken"]["token"] == matrix.SECRETS["token"]
        assert join["discovery"]["bootstrapToken"]["caCertHashes"] == [matrix.CA_HASH]
        assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == matrix.ENDPOINT
        assert join["nodeRegistration"]["name"] == record["node"]
        is_master = sls.endswith("control_plane")
        assert ("controlPlane" in join) is is_master
        if is_master:
            assert join["controlPlane"]["certificateKey"] == matrix.SECRETS["certificate_key"]
        joined = [s for s in record["states"].values() if s["fun"] == "cmd.run"
                  and " join " in s["args"]["name"]]
        assert joined[0]["args"]["creates"] == "/etc/kubernetes/kubelet.conf"


def test_cni_manifest_is_the_clusters(records):
    for record in pick(records, "kubesalt.cni"):
        cni = record["cni"]
        other = ({"calico", "cilium"} - {cni}).pop()
        fetched = record["states"][f"Fetch the {cni} manifest"]["args"]
        assert fetched["source"] == record["pillar"]["kubesalt"]["artifacts"][
            f"{cni}_manifest"]["source"]
        assert fetched["source_hash"].startswith("sha256=")
        rendered = record["states"][f"Set the pod subnet in the {cni} manifest"]["args"]
        assert matrix.POD_SUBNET in rendered["name"]
        assert other not in json.dumps(record["states"])


def _files(record):
    return {s["args"].get("name"): s["fun"] for s in record["states"].values()}


def test_proxy_files_exist_only_with_a_proxy(records):
    drop_ins = {"kubesalt.binaries": "/etc/systemd/system/kubelet.service.d/"
                                     "20-kubesalt-proxy.conf",
                "kubesalt.containerd": "/etc/systemd/system/containerd.service.d/"
                                       "20-kubesalt-proxy.conf",
                "kubesalt.os": "/etc/kubesalt/proxy.env"}
    for sls, path in drop_ins.items():
        for record in pick(records, sls):
            assert _files(record)[path] == ("file.managed" if record["proxy"]
                                            else "file.absent"), where(record)
    for record in pick(records, "kubesalt.os", proxy=True):
        env = record["states"]["Write the proxy environment for containerd and kubelet"]
        assert env["args"]["mode"] == "0600"
        no_proxy = env["args"]["contents"].split("NO_PROXY=")[1].split()[0].split(",")
        for needed in (matrix.POD_SUBNET, matrix.SERVICE_SUBNET, "control-plane.service.consul",
                       "example.internal", ".svc"):
            assert needed in no_proxy


def test_trust_store_and_kubelet_paths_follow_the_os_family(records):
    anchors = {"Debian": "/usr/local/share/ca-certificates/kubesalt-proxy-ca.crt",
               "Ubuntu": "/usr/local/share/ca-certificates/kubesalt-proxy-ca.crt",
               "RedHat": "/etc/pki/ca-trust/source/anchors/kubesalt-proxy-ca.crt",
               "Suse": "/etc/pki/trust/anchors/kubesalt-proxy-ca.crt"}
    extra_args = {"Debian": "/etc/default/kubelet", "Ubuntu": "/etc/default/kubelet",
                  "RedHat": "/etc/sysconfig/kubelet", "Suse": "/etc/sysconfig/kubelet"}
    for record in pick(records, "kubesalt.os"):
        want = "file.managed" if record["proxy"] else "file.absent"
        assert _files(record)[anchors[record["os"]]] == want, where(record)
    for record in pick(records, "kubesalt.binaries"):
        drop_in = record["templates"]["Configure kubelet for kubeadm"]
        assert f"EnvironmentFile=-{extra_args[record['os']]}" in drop_in


def test_containerd_uses_systemd_cgroups_and_the_release_pause_image(records):
    for record in pick(records, "kubesalt.containerd"):
        config = tomllib.loads(record["templates"]["Configure containerd"])
        cri = config["plugins"]["io.containerd.grpc.v1.cri"]
        assert cri["sandbox_image"] == "registry.k8s.io/pause:3.9"
        assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True


def test_consul_servers_on_masters_clients_elsewhere(records):
    for record in pick(records, "kubesalt.consul"):
        pillar = record["pillar"]["kubesalt"]
        masters = [m["address"] for m in pillar["masters"]]
        config = record["states"]["Configure the consul agent"]["args"]["dataset"]
        is_master = "master" in pillar["node"]["roles"]
        assert config["server"] is is_master
        assert config["retry_join"] == masters
        assert config["addresses"]["dns"] == pillar["node"]["address"]
        assert config["ports"]["dns"] == 53
        assert config["recursors"] == ["10.77.0.1"]
        if is_master:
            assert config["bootstrap_expect"] == len(masters)
            assert config["services"][0]["name"] == "control-plane"
            assert config["services"][0]["check"]["tcp"].endswith(":6443")
        else:
            assert "bootstrap_expect" not in config and "services" not in config
        resolv = record["templates"]["Resolve through the node's consul agent"]
        nameservers = [line.split()[1] for line in resolv.splitlines()
                       if line.startswith("nameserver")]
        assert nameservers == [pillar["node"]["address"], "10.77.0.1"]


def test_taints_follow_the_cluster_type(records):
    for record in pick(records, "kubesalt.taints"):
        pillar = record["pillar"]["kubesalt"]
        states = record["states"]
        for master in pillar["masters"]:
            if pillar["cluster"]["dedicated_master"]:
                state = states[f"Keep workloads off master {master['id']}"]["args"]
                assert "unless" in state and state["name"].endswith("NoSchedule --overwrite")
            else:
                state = states[f"Allow workloads on master {master['id']}"]["args"]
                assert "onlyif" in state and state["name"].endswith("NoSchedule-")
        assert len(states) == len(pillar["masters"])


def test_rook_ceph_uses_the_configured_storage_devices(records):
    for record in pick(records, "kubesalt.addons.rook_ceph"):
        spec = _docs(record, "Write the CephCluster manifest")["CephCluster"]["spec"]
        storage_nodes = record["pillar"]["kubesalt"]["storage_nodes"]
        assert spec["storage"]["useAllDevices"] is False
        assert spec["storage"]["nodes"] == [
            {"name": n["id"], "devices": [{"name": d} for d in n["devices"]]}
            for n in storage_nodes]
        assert spec["mon"]["count"] in (1, 3)


def test_every_command_can_be_rerun_without_changes(records):
    """A cmd.run without a guard reports a change on every run, which breaks resume."""
    guards = ("unless", "onlyif", "creates", "onchanges")
    unguarded = {f"{r['sls']}: {sid}" for r in records for sid, s in r["states"].items()
                 if s["fun"] == "cmd.run" and not any(g in s["args"] for g in guards)}
    assert not unguarded, sorted(unguarded)


def _secret_values(pillar):
    kubesalt = pillar["kubesalt"]
    values = [kubesalt["kubeadm"]["token"], matrix.SECRETS["proxy_password"]]
    values += [kubesalt["kubeadm"].get(k) for k in ("ca_key", "certificate_key")]
    values += [kubesalt.get("etcd", {}).get("key")]
    return [v.strip() for v in values if v]


def test_secrets_only_in_private_files(records):
    """Secrets may only be file contents of mode 0600 files whose diff is not shown; never
    in a command line, a guard, a comment or any other argument Salt logs or returns."""
    leaks = []
    for record in records:
        secrets = _secret_values(record["pillar"])
        for state_id, state in record["states"].items():
            args = state["args"]
            private = (state["fun"] in ("file.managed",) and args.get("mode") == "0600"
                       and args.get("show_changes") is False)
            text = record["templates"].get(state_id, "")
            for key, value in args.items():
                if key == "contents" and private:
                    continue
                text += "\n" + json.dumps(value, default=str)
            if private:
                text = json.dumps({k: v for k, v in args.items() if k != "contents"},
                                  default=str)
            if any(secret in text for secret in secrets):
                leaks.append(f"{where(record)}: {state_id!r}")
            if state["fun"] == "cmd.run" and any(w in args["name"] for w in (" init ", " join ")):
                assert args.get("output_loglevel") == "quiet" and args.get("hide_output")
    assert not leaks, "\n".join(sorted(set(leaks))[:10])


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    conf = next(matrix.configurations("Debian"))
    with quiet_salt_logs():
        r = Renderer(tmp_path_factory.mktemp("single"), conf["grains"])
        yield r
        r.close()


def _first(os_name="Debian", **match):
    return next(c for c in matrix.configurations(os_name)
                if all(c[k] == v for k, v in match.items()))


@pytest.mark.parametrize(("sls", "role"), [
    ("kubesalt.etcd", "worker"), ("kubesalt.kubeadm.init", "other master"),
    ("kubesalt.kubeadm.join_control_plane", "first master"),
    ("kubesalt.kubeadm.join_worker", "first master"), ("kubesalt.cni", "worker"),
    ("kubesalt.wait_pods", "storage")])
def test_an_sls_applied_to_the_wrong_role_fails_clearly(renderer, sls, role):
    conf = _first(type="dedicated-multi-master", role=role)
    high, errors = renderer.render(sls, conf["grains"], conf["pillar"])
    assert not errors
    (state,) = flatten(high).values()
    assert state["fun"] == "test.fail_without_changes"
    assert conf["node"] in state["args"]["comment"]


def test_missing_pillar_names_the_key(renderer):
    conf = _first(role="worker")
    del conf["pillar"]["kubesalt"]["artifacts"]["crictl"]
    _, errors = renderer.render("kubesalt.binaries", conf["grains"], conf["pillar"])
    assert any("pillar kubesalt:artifacts:crictl is missing" in e for e in errors), errors


def test_prechecks_fail_on_an_address_not_on_the_interface(renderer):
    conf = _first(role="worker")
    conf["grains"]["ip4_interfaces"]["host0"] = ["10.77.0.99"]
    high, errors = renderer.render("kubesalt.prechecks", conf["grains"], conf["pillar"])
    assert not errors
    states = flatten(high)
    failed = {sid: s for sid, s in states.items()
              if s["fun"] == "test.configurable_test_state"}
    check = failed["Node address 10.77.0.21 is on host0"]["args"]
    assert check["result"] is False and "10.77.0.99" in check["comment"]


def test_prechecks_pass_and_note_swap(renderer):
    conf = _first(role="storage")
    conf["grains"]["swap_total"] = 2048
    high, _ = renderer.render("kubesalt.prechecks", conf["grains"], conf["pillar"])
    funs = {sid: s["fun"] for sid, s in flatten(high).items()}
    assert "Swap is on and will be turned off by the os stage" in funs
    assert all(f != "test.configurable_test_state" or "Host tools" in sid
               for sid, f in funs.items())


def test_salt_lint_is_clean():
    files = sorted(str(p) for p in STATES_DIR.joinpath("kubesalt").rglob("*.sls"))
    result = subprocess.run([str(SALT_LINT), *files], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("os_name", list(matrix.OS_GRAINS))
def test_reset_renders_for_every_role(renderer, os_name):
    for role in ("first master", "other master", "worker", "storage"):
        conf = _first(os_name, type="dedicated-multi-master", role=role)
        high, errors = renderer.render("kubesalt.reset", conf["grains"], conf["pillar"])
        assert not errors, errors
        states = flatten(high)
        removed = {s["args"]["name"] for s in states.values() if s["fun"] == "file.absent"}
        assert {"/etc/kubernetes", "/usr/local/bin/kubelet", "/var/lib/etcd"} <= removed
        reset = states["Reset kubeadm on this node"]["args"]
        assert reset["hide_output"] and "onlyif" in reset
        assert not broken_requisites(states)


def test_upgrade_applies_on_the_first_master_and_upgrades_the_others_after(records):
    version = matrix.VERSIONS["kubernetes"]
    for record in pick(records, "kubesalt.upgrade"):
        states = record["states"]
        command = states[f"Upgrade Kubernetes on this node to v{version}"]["args"]["name"]
        if record["role"] == "first master":
            assert command.endswith(f"kubeadm upgrade apply v{version} --yes"), where(record)
        else:
            assert command.endswith("kubeadm upgrade node"), where(record)
        included = {s["sls"] for s in states.values()}
        assert "kubesalt.containerd" in included and "kubesalt.binaries" in included
        assert ("kubesalt.etcd" in included) is record["role"].endswith("master")
        restart = states[f"Restart kubelet on v{version}"]["args"]
        assert restart["name"] == "systemctl restart kubelet"
        assert f"kubernetes: {version}" in restart["unless"]


@pytest.mark.parametrize(("sls", "state_id"), [
    ("kubesalt.kubeadm.drain", "Drain node-w0"),
    ("kubesalt.kubeadm.uncordon", "Uncordon node-w0"),
    ("kubesalt.kubeadm.delete_node", "Delete node-w0 from Kubernetes"),
    ("kubesalt.etcd.remove_member", "Remove etcd member node-w0")])
def test_day2_steps_act_on_the_node_the_operation_names(records, renderer, sls, state_id):
    for record in pick(records, sls):
        assert "node-w0" in record["states"][state_id]["args"]["name"], where(record)
    conf = _first(role="first master")
    del conf["pillar"]["kubesalt_op"]
    _, errors = renderer.render(sls, conf["grains"], conf["pillar"])
    assert any("pillar kubesalt_op:node" in e for e in errors), errors


def test_agent_removal_removes_only_kubesalts_agent_after_the_run(records):
    for record in pick(records, "kubesalt.agent.remove"):
        (state,) = record["states"].values()
        command = state["args"]["name"]
        assert command.startswith("systemd-run ") and "--on-active=" in command
        assert "rm -rf /opt/kubesalt" in command
        # killed, every process of the unit, then stopped (which ends a pending restart)
        for unit in ("kubesalt-minion.service", "kubesalt-tunnel.service"):
            assert f"systemctl kill --signal=SIGKILL {unit}; systemctl stop {unit};" in command
            assert f"rm -f /etc/systemd/system/{unit};" in command
            assert f"systemctl reset-failed {unit};" in command
        assert command.index("systemctl stop kubesalt-tunnel") < command.index("rm -rf")
        assert "/etc/salt" not in command and " salt-minion.service" not in command
        assert "$" not in command, "systemd expands $VARIABLES in what systemd-run runs"


@pytest.mark.parametrize("kind", sorted(plan.PLANS))
def test_every_job_of_each_plan_applies_an_sls_the_matrix_renders_on_its_node(records, kind):
    """What the executor sends (master/ops/lanes.py) is what this matrix compiles: each task's
    SLS rendered without errors for the role of the node it goes to."""
    nodes = [{"id": i, "config": {"roles": r}}
             for i, r, _ in matrix.nodes_of("dedicated-multi-master")]
    removed = nodes[-1] if kind == "remove-node" else None
    stages = plan.resolve(cluster_spec(storage="rook-ceph"), nodes[:-1] if removed else nodes,
                          kind=kind, removed=removed)
    op = {"id": "op-1", "cluster": "edge1", "kind": kind, "params": {"node": "node-s0"},
          "stages": [dict(s, state="skipped" if s["skip"] else "pending") for s in stages]}
    masters = [n["id"] for n in nodes if "master" in n["config"]["roles"]]
    tasks = lanes.build(op, masters)
    node_stages = {s["name"] for s in stages if not s["skip"] and s["targets"] != "controller"}
    assert {stage for stage, _ in tasks} == node_stages
    for task in tasks.values():
        for step in task.steps:
            rendered = pick(records, step.sls, type="dedicated-multi-master", node=step.node)
            assert all(not r["errors"] for r in rendered), where(rendered[0])
