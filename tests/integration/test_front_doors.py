"""salt-run and the REST API accept and refuse exactly the same values: one table of invalid
calls runs through both front doors of one real controller, each refused for the same field,
non-zero / 400, and nothing is stored."""

import json
import subprocess

import pytest

from .controller import BIN, _env, running

pytestmark = pytest.mark.integration

OPERATOR = ("ophelia", "op-Secret-1234")

# (runner function, arguments as JSON values, the field both doors must name)
INVALID = [
    ("cluster.create", {"name": "t1", "installer_ttl_days": 1_000_000_000},
     "installer_ttl_days"),
    ("cluster.create", {"name": "t1", "installer_ttl_days": 0}, "installer_ttl_days"),
    ("cluster.create", {"name": "t1", "location": "x" * 5000}, "location"),
    ("cluster.create", {"name": "t1", "labels": {f"k{i}": "v" for i in range(1000)}},
     "labels"),
    ("cluster.create", {"name": "t1", "pod_subnet": "169.254.0.0/16"}, "pod_subnet"),
    ("cluster.create", {"name": "t1", "pod_subnet": "224.0.0.0/4"}, "pod_subnet"),
    ("cluster.create", {"name": "t1", "service_subnet": "0.0.0.0/12"}, "service_subnet"),
    ("cluster.create", {"name": "t1", "ha": "maybe"}, "ha"),
    ("cluster.create", {"name": "t1", "k8s_version": "1.3"}, "k8s_version"),
    ("cluster.create", {"name": "t1", "bogus": "x"}, "bogus"),
    ("cluster.create", {"name": "Bad_Name"}, "name"),
    ("cluster.create", {}, "name"),
    ("cluster.show", {}, "name"),
    ("cluster.update", {"name": "keep", "installer_ttl_days": 1_000_000_000},
     "installer_ttl_days"),
    ("cluster.update", {"name": "keep", "location": "y" * 5000}, "location"),
    ("cluster.update", {"name": "keep", "pod_subnet": "10.1.0.0/16"}, "pod_subnet"),
    ("cluster.installer", {"name": "keep", "rotate": "maybe"}, "rotate"),
    ("cluster.installer", {"name": "keep", "rotat": True}, "rotat"),
    ("cluster.status", {"name": "keep", "history": "maybe"}, "history"),
    ("cluster.reset", {"name": "keep", "confirm": "maybe"}, "confirm"),
    ("node.list", {"sort": [1]}, "sort"),
    ("node.list", {"clster": "x"}, "clster"),
    ("node.list", {"limit": 0}, "limit"),
    ("node.list", {"offset": -1}, "offset"),
    ("node.remove", {"node": "node-0000-10-0-0-9-keep", "drain": "maybe"}, "drain"),
    ("artifacts.sync", {"version": "1.30", "arch": "../../x"}, "arch"),
    ("artifacts.sync", {"version": "1.30", "sorce": "/x"}, "sorce"),
    ("artifacts.missing", {"version": "1.30", "arch": "bogus"}, "arch"),
    ("artifacts.missing", {}, "version"),
    ("artifacts.list", {"arch": "bogus"}, "arch"),
    ("cluster.upgrades", {}, "name"),
    ("cluster.upgrades", {"name": "nope"}, "name"),
    ("cluster.options", {"name": "keep"}, "name"),
    ("node.logs", {"node": "node-0000-10-0-0-9-keep", "lines": 0}, "lines"),
    ("node.logs", {"node": "node-0000-10-0-0-9-keep", "lines": 5000}, "lines"),
    ("node.logs", {"node": "node-0000-10-0-0-9-keep", "lines": "many"}, "lines"),
    ("node.logs", {"node": "node-0000-10-0-0-9-keep"}, "node"),
    ("cluster.cancel", {}, "name"),
    ("cluster.cancel", {"name": "nope"}, "name"),
    ("cluster.cancel", {"name": "keep"}, "name"),
    ("cluster.cancel", {"name": "keep", "wait": "maybe"}, "wait"),
    ("cluster.health", {}, "name"),
    ("cluster.health", {"name": "nope"}, "name"),
    ("cluster.delete", {"name": "keep", "force": True}, "confirm"),
    ("cluster.delete", {"name": "keep", "force": "maybe"}, "force"),
    ("cluster.delete", {"name": "nope", "force": True, "confirm": True}, "name"),
    ("node.forget", {}, "node"),
    ("node.forget", {"node": "node-0000-10-0-0-9-keep"}, "node"),
]


@pytest.fixture(scope="module")
def ctl():
    with running("ksf-", [(OPERATOR[0], "operator", OPERATOR[1])]) as controller:
        controller.run_ok("cluster.create", "keep")
        yield controller


@pytest.fixture(scope="module")
def api(ctl):
    return ctl.api_session(*OPERATOR)


def _salt_run(ctl, fun, arguments):
    """The call as an operator types it: key=value words, values in YAML flow style (a
    string as it is, so `maybe` and `1.3` reach salt-run's own parsing)."""
    words = [f"{k}={v if isinstance(v, str) else json.dumps(v)}"
             for k, v in arguments.items()]
    proc = subprocess.run([str(BIN / "salt-run"), "-c", str(ctl.conf_dir), "--out=json", fun,
                           *words], capture_output=True, text=True, timeout=120, env=_env(),
                          stdin=subprocess.DEVNULL)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _fields(answer):
    return sorted({e["field"] for e in answer["errors"]})


def _stored(ctl):
    clusters = ctl.run_ok("cluster.list")
    return ([(c["name"], c["location"], c["installer_ttl_days"], c["labels"]) for c in clusters],
            sorted(p.name for p in (ctl.root / "var").rglob("*")
                   if "artifacts" in p.parts))


@pytest.mark.parametrize("fun, arguments, field", INVALID,
                         ids=[f"{f}-{field}" for f, _, field in INVALID])
def test_both_doors_refuse_the_same_field(ctl, api, fun, arguments, field):
    before = _stored(ctl)
    code, answer = _salt_run(ctl, fun, arguments)
    assert code == 2 and field in _fields(answer), (code, answer)
    resp = api.post(f"{ctl.api_url}/", json={"client": "runner", "fun": fun, **arguments},
                    timeout=60)
    assert resp.status_code == 400, resp.text
    (api_answer,) = resp.json()["return"]
    assert field in _fields(api_answer), api_answer
    assert _stored(ctl) == before
