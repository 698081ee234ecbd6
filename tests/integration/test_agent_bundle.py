"""`kubesalt-controller start` makes the node-agent bundle nodes need without being asked: a
fresh controller builds it, a restart finds it up to date and leaves it alone, a damaged one is
built again."""

import json
import shutil
import tempfile

import pytest

from kubesalt.master.agent import bundle as agent_bundle
from kubesalt.minion_bootstrap import agent

from .controller import Controller

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh():
    root = tempfile.mkdtemp(prefix="ksb-")
    ctl = Controller(root)
    ctl.init()
    yield ctl
    ctl.stop()
    shutil.rmtree(root, ignore_errors=True)


def _bundle_lines(proc):
    return [line for line in proc.stderr.splitlines() if "node-agent bundle" in line]


def test_start_builds_the_agent_bundle_once(fresh):
    agent_dir = fresh.root / "var/lib/kubesalt/files/kubesalt-artifacts/agent"
    assert not agent_dir.exists()
    target = f"{agent_bundle.python_tag()}/{agent_bundle.own_arch()}"

    first = fresh.ctl("start")
    [line] = _bundle_lines(first)
    assert f"building the node-agent bundle for {target}, salt " in line
    assert "none built yet" in line and "agent-bundle.log" in line
    assert json.loads(first.stdout)["agent_bundle"] == f"{target} built"
    manifest_file = agent_dir / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    [entry] = manifest["bundles"]
    assert manifest["format"] == 2 and entry["source"] == "controller" and entry["compiled"]
    bundle = agent_dir / entry["file"]
    assert agent.sha256_file(bundle) == entry["sha256"]

    def files():
        return [(p.name, p.stat().st_ino, p.stat().st_mtime_ns)
                for p in sorted(agent_dir.iterdir())]

    before = files()
    fresh.stop()
    second = fresh.ctl("start")
    assert _bundle_lines(second) == []
    assert json.loads(second.stdout)["agent_bundle"] == f"{target} up to date"
    assert files() == before

    code, status = fresh.status()
    assert code == 0
    assert status["agent_bundles"] == [{
        "python": entry["python"], "arch": entry["arch"], "salt": entry["salt"],
        "size_mb": round(entry["size"] / 1e6, 1), "compiled": True, "file": entry["file"]}]

    fresh.stop()
    bundle.write_bytes(b"damaged")
    third = fresh.ctl("start")
    [line] = _bundle_lines(third)
    assert "does not match its checksum" in line
    # the same environment gives the same bytes
    assert agent.sha256_file(bundle) == entry["sha256"]
