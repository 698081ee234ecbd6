"""The kubesalt_node execution and state modules (modules/_modules, modules/_states), loaded
from their files as Salt's loader would ship them to a minion, against the cases in
files/test_kubesalt_node.yaml. Commands are answered from the cases, never run."""

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CASES = yaml.safe_load((Path(__file__).parent / "files" / "test_kubesalt_node.yaml")
                       .read_text())
# map.jinja's kubectl_cmd and etcdctl_cmd with the defaults, on the matrix's first master
COMMANDS = {
    "KUBECTL": ["/usr/local/bin/kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"],
    "ETCDCTL": ["/usr/local/bin/etcdctl", "--endpoints", "https://10.77.0.11:2379",
                "--cacert", "/etc/etcd/pki/ca.crt", "--cert", "/etc/etcd/pki/server.crt",
                "--key", "/etc/etcd/pki/server.key"],
}


def load(kind):
    path = ROOT / "modules" / f"_{kind}" / "kubesalt_node.py"
    spec = importlib.util.spec_from_file_location(f"kubesalt_node_{kind}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commands(value):
    """The placeholders KUBECTL and ETCDCTL of a case, as the command lists."""
    if isinstance(value, list):
        return [commands(v) for v in value]
    if isinstance(value, dict):
        return {k: commands(v) for k, v in value.items()}
    return COMMANDS.get(value, value) if isinstance(value, str) else value


class FakeCommands:
    """cmd.run_all answering from a case: the words of the argv after the command's own
    options, joined by spaces, are looked up in `answers`; every argv is recorded."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.ran = []

    def __call__(self, argv, python_shell=True, ignore_retcode=False):
        assert isinstance(argv, list) and python_shell is False and ignore_retcode
        self.ran.append(argv)
        for command in COMMANDS.values():
            if argv[:len(command)] == command:
                words = " ".join(argv[len(command):])
                break
        else:
            raise AssertionError(f"not kubectl or etcdctl: {argv}")
        assert words in self.answers, f"no answer in the case for {words!r}"
        return {"retcode": 0, "stdout": "", "stderr": "", **self.answers[words]}


def modules(answers=None, test=False):
    """The execution and state modules wired as Salt's loader would: __salt__ holds the
    execution module's functions and cmd.run_all, __opts__ the test flag."""
    execution, states = load("modules"), load("states")
    run_all = FakeCommands(answers)
    salt = {"cmd.run_all": run_all}
    salt.update({f"kubesalt_node.{name}": getattr(execution, name) for name in dir(execution)
                 if not name.startswith("_") and callable(getattr(execution, name))})
    for module in (execution, states):
        module.__salt__ = salt
        module.__opts__ = {"test": test}
    return execution, states, run_all


def title(case):
    return case.get("title") or case["function"]


@pytest.mark.parametrize("case", CASES["etcd_member_ids"], ids=title)
def test_etcd_member_ids(case):
    execution, _, _ = modules()
    assert execution.etcd_member_ids(case["listing"], case["name"]) == case["expected"]


@pytest.mark.parametrize("case", CASES["node_lookup"], ids=title)
def test_node_lookup(case):
    execution, _, _ = modules()
    assert execution.node_lookup(case["result"]) == case["expected"]


@pytest.mark.parametrize("case", CASES["is_schedulable"], ids=title)
def test_is_schedulable(case):
    execution, _, _ = modules()
    assert execution.is_schedulable(case["result"]) is case["expected"]


@pytest.mark.parametrize("case", CASES["readiness_of"], ids=title)
def test_readiness_of(case):
    execution, _, _ = modules()
    assert execution.readiness_of(case["result"]) == case["expected"]


def test_readiness_asks_the_api_for_every_node():
    execution, _, run_all = modules({"get nodes -o json": {
        "stdout": '{"items": [{"metadata": {"name": "m1"}, "status": {"conditions": '
                  '[{"type": "Ready", "status": "True"}]}}]}'}})
    assert execution.readiness(COMMANDS["KUBECTL"]) == {"m1": {"ready": "True", "reason": None}}
    assert run_all.ran == [COMMANDS["KUBECTL"] + ["get", "nodes", "-o", "json"]]


@pytest.mark.parametrize("case", CASES["actions"],
                         ids=lambda case: f"{case['function']} {len(case['args'])}")
def test_actions_run_the_command_lines_the_states_ran(case):
    execution, _, run_all = modules()
    argv = case["argv"].split()
    run_all.answers = {" ".join(argv[len(c):]): {} for c in COMMANDS.values()}
    result = getattr(execution, case["function"])(*commands(case["args"]))
    assert result["retcode"] == 0
    assert run_all.ran == [argv]


@pytest.mark.parametrize("case", CASES["states"], ids=title)
def test_states(case):
    _, states, run_all = modules(case["answers"], test=case.get("test", False))
    kwargs = commands(case["kwargs"])
    ret = getattr(states, case["state"])(**kwargs)
    expected = case["expected"]
    assert ret["name"] == kwargs["name"]
    assert (ret["result"], ret["changes"]) == (expected["result"], expected["changes"]), ret
    assert expected["comment"] in ret["comment"], ret
    command = COMMANDS["KUBECTL" if "kubectl" in kwargs else "ETCDCTL"]
    assert run_all.ran == [command + words.split() for words in case["ran"]]


def test_the_state_module_needs_the_execution_module():
    execution, states, _ = modules()
    assert states.__virtual__() == "kubesalt_node"
    states.__salt__ = {}
    assert states.__virtual__()[0] is False
    assert execution.__virtual__() == "kubesalt_node"
