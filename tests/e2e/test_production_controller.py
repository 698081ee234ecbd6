"""The controller installed as an operator installs it on a machine of its own, in a lab node:
the README's "Production controller host" commands as printed (a wheelhouse built on this
machine, `pip install --no-index` in a venv, `init` without --root, the systemd units), then
other lab nodes enroll with it and are provisioned to READY by `salt-run` run in that node.
A stop in the middle of a provision, and a power cut of the controller's node in the middle of
another, are each recorded as an interruption that `cluster.provision` resumes."""

import dataclasses
import json
import re
import shlex

import pytest

from tests.e2e.test_provision import K8S, configure, join, kubectl
from tests.integration.controller import last_json
from tests.integration.test_readme import README
from tests.labkit import artifacts as lab_artifacts
from tests.labkit import wheelhouse
from tests.labkit.lab import Node
from tests.waiting import wait_for

pytestmark = pytest.mark.lab
SECTION = "## Production controller host"
VENV = "/opt/kubesalt-controller"
UNITS = ("kubesalt-controller.service", "kubesalt-controller-api.service")
CLUSTER = "prod"
EARLY_STAGES = {"binaries", "containerd", "consul"}


def readme_blocks():
    """The sh blocks of the README's production section: [build lines, host lines]."""
    text = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [[line for line in block.splitlines() if line.strip()]
            for block in re.findall(r"```sh\n(.*?)```", text, re.S)]


class NodeController:
    """salt-run and kubesalt-controller in the controller's node, as its operator runs them."""

    def __init__(self, node):
        self.node = node

    def run(self, fun, *args, timeout=120):
        proc = self.node.run([f"{VENV}/bin/salt-run", "--out=json", fun, *args],
                             timeout=timeout)
        return proc.returncode, last_json(proc.stdout) if proc.stdout.strip() else proc.stderr

    def run_ok(self, fun, *args):
        code, data = self.run(fun, *args)
        assert code == 0, f"salt-run {fun} {args} exited {code}: {data}"
        return data

    def ctl(self, *args):
        proc = self.node.run([f"{VENV}/bin/kubesalt-controller", "--json", *args], timeout=300)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None

    def provision(self, timeout=900):
        """cluster.provision wait=True: cluster.status once the operation ended."""
        code, final = self.run("cluster.provision", CLUSTER, "wait=True", f"timeout={timeout}",
                               timeout=timeout + 120)
        assert isinstance(final, dict) and final.get("operation"), final
        return self.run_ok("cluster.status", CLUSTER)

    def stage_running(self, names):
        op = self.run_ok("cluster.status", CLUSTER)["operation"]
        return any(s["stage"] in names and s["state"] == "running" for s in op["stages"])

    def units(self):
        return self.node.run(["systemctl", "is-active", *UNITS]).stdout.split()


@dataclasses.dataclass
class Production:
    ctl: NodeController
    members: list  # the cluster's first nodes: a master and a worker
    extra: Node  # a worker added later
    creds: object  # the installer files, copied out of the controller's node


@pytest.fixture(scope="module")
def production(lab, tmp_path_factory):
    if len(lab.nodes) < 4:
        pytest.skip("needs 4 lab nodes (KUBESALT_LAB_NODES)")
    master, worker, extra, host = lab.renew(lab.nodes[:4])
    [build, on_host] = readme_blocks()
    # the README's build line is what the wheelhouse runs (cached, and kubesalt fresh)
    assert [shlex.split(line) for line in build] == [wheelhouse.pip_wheel("wheelhouse", ".")]
    host.push(wheelhouse.build(tmp_path_factory.mktemp("wheelhouse")), "/root/wheelhouse")
    for line in on_host:
        command = re.sub(r"\s*\[[^\]]*\]", "", line).replace("10.0.0.5", host.address)
        proc = host.sh(f"cd /root && {command}", timeout=600)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, \
            (command, proc.stdout, proc.stderr)
    ctl = NodeController(host)
    source = tmp_path_factory.mktemp("artifacts")
    lab_artifacts.build(source, K8S)
    host.push(source, "/root/artifacts")
    ctl.run_ok("artifacts.sync", K8S, "source=/root/artifacts")
    ctl.run_ok("cluster.create", CLUSTER, "os=debian-12", f"k8s_version={K8S}",
               "auto_approve=True", "blueprint=minimal", "dedicated_master=True")
    ctl.run_ok("cluster.installer", CLUSTER, "dest=/root/creds")
    return Production(ctl, [master, worker], extra, host.path("/root/creds"))


def test_installed_controller_provisions_to_ready_and_resumes_after_a_stop(production):
    ctl, host = production.ctl, production.ctl.node
    code, status = ctl.ctl("status")
    assert code == 0 and status["running"] and status["api_running"], status
    assert status["units"] == {unit: "active, enabled" for unit in UNITS}
    assert status["config_dir"] == "/etc/salt" and status["advertise"] == host.address
    assert status["agent_bundles"], "start builds the nodes' agent from the installed salt"
    # the units run the venv's Salt, and the job cache (runners' arguments) is root's alone
    assert host.run(["systemctl", "show", "-P", "ExecStart", UNITS[0]]).stdout.count(
        f"{VENV}/bin/salt-master -c /etc/salt") == 1
    assert host.run(["stat", "-c", "%a", "/var/cache/salt", "/var/lib/kubesalt"]).stdout \
        .split() == ["700", "700"]

    # a crash of salt-master's main process leaves its children holding the ports: the unit
    # ends them before systemd's restart, and the controller answers again by itself
    crashed = status["pid"]
    host.run(["kill", "-9", str(crashed)], check=True)
    wait_for(lambda: _daemons_running(ctl) and ctl.ctl("status")[1]["pid"] != crashed, 120,
             "systemd to restart salt-master")
    code, status = ctl.ctl("status")
    assert status["orphans"] == [], status
    assert ctl.run_ok("cluster.show", CLUSTER)["state"] == "CREATED"

    ids = join(ctl, CLUSTER, production.members, production.creds)
    configure(ctl, ids, ["master", "worker"])
    first = ctl.run_ok("cluster.provision", CLUSTER)["operation"]
    wait_for(lambda: ctl.stage_running(EARLY_STAGES), 300, "an early stage to run")
    code, stopped = ctl.ctl("stop")
    assert code == 0 and stopped == {"stopped": True}
    assert ctl.units() == ["inactive", "inactive"]
    code, _ = ctl.ctl("start")
    assert code == 0 and ctl.units() == ["active", "active"]
    [interrupted] = ctl.run_ok("cluster.status", CLUSTER, "history=True")["operations"]
    assert (interrupted["operation"], interrupted["state"]) == (first, "failed"), interrupted
    assert interrupted["failed_stage"] in EARLY_STAGES
    assert "controller stopped" in interrupted["error"]

    done = {s["stage"] for s in interrupted["stages"] if s["state"] == "done"}
    assert "prechecks" in done, interrupted

    status = ctl.provision()
    assert status["state"] == "READY", status
    resumed = {s["stage"]: s["state"] for s in status["operation"]["stages"]}
    assert all(resumed[stage] == "skipped" for stage in done), resumed
    assert resumed["worker-join"] == "done", resumed
    assert {r["status"] for r in ctl.run_ok("node.list", f"cluster={CLUSTER}")} == {"READY"}


def _daemons_running(ctl):
    code, status = ctl.ctl("status")  # exits 3 while salt-master is not running
    return code == 0 and status["running"] and status["api_running"]


def test_power_cut_of_the_controller_mid_provision_is_resumed_to_ready(production):
    """A worker joins the READY cluster; the controller's node loses power while it does, boots
    again by itself with the units, and the rerun joins the worker."""
    ctl, host = production.ctl, production.ctl.node
    assert ctl.run_ok("cluster.status", CLUSTER)["state"] == "READY", "runs after the test above"
    [worker_id] = join(ctl, CLUSTER, [production.extra], production.creds)
    configure(ctl, [worker_id], ["worker"])
    cut = ctl.run_ok("cluster.provision", CLUSTER)["operation"]
    wait_for(lambda: ctl.stage_running(EARLY_STAGES), 300, "an early stage to run")

    host.power_cut()
    wait_for(lambda: ctl.units() == ["active", "active"], 120,
             "the units to start by themselves")
    # salt-api tells systemd it is ready before it has even read its configuration, so an
    # active unit comes before its pidfile: wait for the controller's own view of both daemons.
    wait_for(lambda: _daemons_running(ctl), 120, "status to show salt-master and salt-api")
    assert host.run(["stat", "-c", "%a", "/var/cache/salt"]).stdout.strip() == "700"
    last = ctl.run_ok("cluster.status", CLUSTER, "history=True")["operations"][-1]
    assert (last["operation"], last["state"]) == (cut, "failed"), last
    assert last["failed_stage"] in EARLY_STAGES and "interrupted" in last["error"], last
    # an addition that did not finish leaves the serving cluster READY, the worker FAILED
    assert ctl.run_ok("cluster.status", CLUSTER)["state"] == "READY"
    assert ctl.run_ok("node.show", worker_id)["status"] == "FAILED"

    status = ctl.provision()
    assert status["state"] == "READY", status
    joined = {s["stage"]: s["nodes"] for s in status["operation"]["stages"]}["worker-join"]
    assert worker_id in joined, status
    # the rerun finished the worker alone, not the whole cluster again
    ran = {s["stage"]: s["nodes"] for s in status["operation"]["stages"] if s["state"] == "done"}
    assert all(nodes == [worker_id] for stage, nodes in ran.items()
               if stage not in ("wait-for-pods", "ready")), ran
    assert {r["status"] for r in ctl.run_ok("node.list", f"cluster={CLUSTER}")} == {"READY"}
    assert len(kubectl(production.members[0], "get", "nodes")["items"]) == 3
