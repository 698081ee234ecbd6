"""The README's operator walkthrough, run as printed against a real controller, so the README
cannot drift from the code again.

Every `ks ...` line (the README's alias for `salt-run -c ROOT/etc/salt`) of the walkthrough,
the node and provisioning sections and day 2 runs through the real `salt-run`. Optional parts
written `[...]` are left out, except `[source=DIR]`: this machine has no internet, so
artifacts come from a local source laid out like the store. Lines that need enrolled nodes run
against names that do not exist and must be refused for exactly that name (every other
argument as printed was accepted); the rest must succeed.
"""

import json
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from kubesalt.master.inventory import artifacts
from kubesalt.master.inventory import matrix

from .controller import BIN, Controller, _env, running

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
# Placeholders of lines that need nodes, and what they become here (nothing by these names
# exists, so the refusal must name that field).
ABSENT = {"NAME": ("gone", "name"), "NODE": ("node-0000-10-0-0-9-gone", "node")}
NEEDS_NODES = ("cluster.provision", "cluster.upgrade", "cluster.reset", "cluster.cancel",
               "cluster.delete", "node.")


def readme_command_lines():
    """Every line of the README's sh blocks, in order, continuation lines joined."""
    lines, block, pending = [], False, ""
    for raw in README.read_text().splitlines():
        if raw.startswith("```"):
            block = raw.strip() == "```sh"
            continue
        if not block:
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        lines.append(line)
    return lines


def readme_runner_lines():
    """The `ks ...` command lines of the README's sh blocks."""
    return [line for line in readme_command_lines() if line.startswith("ks ")
            and not line.startswith("ks '") and not line.startswith("ks() ")]


def test_the_readme_shows_the_walkthrough():
    verbs = {shlex.split(line, comments=True)[1] for line in readme_runner_lines()}
    assert {"cluster.create", "cluster.show", "cluster.list", "cluster.update",
            "cluster.installer", "cluster.delete", "node.list", "node.approve",
            "node.configure", "artifacts.sync", "cluster.provision", "cluster.status",
            "cluster.upgrade", "node.remove", "cluster.reset"} <= verbs


@pytest.fixture(scope="module")
def ctl():
    with running("ksm-") as controller:
        yield controller


def _artifact_source(root):
    """A local source for every release the README syncs: files at the store's paths."""
    source = Path(root) / "airgap"
    m = matrix.default()
    for version in m.k8s_versions:
        for path in artifacts.wanted(m, m.resolve_k8s_version(version)).values():
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            (source / path).write_bytes(f"{path}\n".encode())
    return source


def _as_run_here(line, ctl, scratch, source):
    words = shlex.split(re.sub(r"\s*\[[^\]]*\]", "", line), comments=True)[1:]
    fun = words[0]
    expect_field = None
    for i, word in enumerate(words):
        for placeholder, (absent, field) in ABSENT.items():
            if word == placeholder:
                if fun.startswith(NEEDS_NODES):
                    words[i], expect_field = absent, field
                else:
                    words[i] = "edge2"
        if word.startswith("dest=/root/"):
            words[i] = f"dest={scratch}/{word.rsplit('/', 1)[1]}"
    if fun == "artifacts.sync" and not any(w.startswith("source=") for w in words):
        words.append(f"source={source}")
    words = [w.replace("source=DIR", f"source={source}") for w in words]
    return fun, words, expect_field


def test_every_runner_line_of_the_readme_runs(ctl):
    scratch = Path(ctl.root) / "creds"
    scratch.mkdir()
    source = _artifact_source(ctl.root)
    ran = []
    for line in readme_runner_lines():
        fun, words, expect_field = _as_run_here(line, ctl, scratch, source)
        proc = subprocess.run([str(BIN / "salt-run"), "-c", str(ctl.conf_dir), "--out=json",
                               *words], capture_output=True, text=True, timeout=120,
                              env=_env(), stdin=subprocess.DEVNULL)
        assert "Traceback" not in proc.stdout + proc.stderr, (line, proc.stderr)
        if expect_field:
            assert proc.returncode == 2, (line, proc.stdout)
            assert re.findall(r'"field": "([^"]+)"', proc.stdout) == [expect_field], \
                (line, proc.stdout)
        else:
            assert proc.returncode == 0, (line, proc.stdout, proc.stderr)
        ran.append(fun)
    assert ran.count("cluster.create") == 2 and "cluster.delete" in ran
    # what the walkthrough promised happened
    code, shown = ctl.run("cluster.show", "edge2")
    assert code == 0 and shown["labels"] == {"env": "prod", "team": "retail"}
    assert shown["k8s_version"].startswith("1.30.") and shown["cni"] == "cilium"
    assert shown["reset_enabled"] is True and shown["auto_approve"] is False
    assert sorted(p.name for p in (scratch / "edge2b").iterdir()) == \
        ["conjurer", "edge2-passphrase.txt", "edge2.pem"]
    code, missing = ctl.run("artifacts.missing", "1.30")
    assert code == 0 and missing["missing"] == []
    code, _ = ctl.run("cluster.show", "edge1")
    assert code == 2


def readme_controller_lines():
    """The `kubesalt-controller ...` command lines of the README's sh blocks, in order."""
    return [line for line in readme_command_lines()
            if line.startswith("kubesalt-controller ")]


def _controller_words(line, ctl):
    """A README line as run here: its own root, loopback and free ports for the README's
    address and ports, optional parts left out."""
    ports = {"4505": ctl.publish_port, "4506": ctl.ret_port, "4507": ctl.https_port,
             "8443": ctl.api_port}
    line = re.sub(r"\[(--\S+-port) (\d+)\]", lambda m: f"{m[1]} {ports[m[2]]}", line)
    line = re.sub(r"\s*\[[^\]]*\]", "", line)
    words = shlex.split(line, comments=True)[1:]
    return [{"/srv/ks": str(ctl.root), "10.0.0.5": ctl.interface}.get(w, w) for w in words]


def test_every_controller_line_of_the_readme_runs(tmp_path):
    root = Path(tempfile.mkdtemp(prefix="ksr-"))
    ctl = Controller(root)
    (tmp_path / "bob.pw").write_text("bob's password\n")
    lines = readme_controller_lines()
    assert [line.split()[1] for line in lines] == [
        "init", "start", "status", "stop", "agent-bundle", "user", "user", "user", "user"]
    try:
        for line in lines:
            words = _controller_words(line, ctl)
            proc = subprocess.run([str(BIN / "kubesalt-controller"), "--json", *words],
                                  input="alice's password\n" * 2, capture_output=True,
                                  text=True, timeout=300, cwd=tmp_path, env=_env(),
                                  start_new_session=True)  # no tty: the password from stdin
            assert "Traceback" not in proc.stdout + proc.stderr, (line, proc.stderr)
            assert proc.returncode == 0, (line, proc.stdout, proc.stderr)
            if words[0] == "init":
                ctl.add_user("carol", "viewer", "carol's password")  # whom the README removes
            if words[0] == "agent-bundle":
                assert json.loads(proc.stdout)["source"] == "controller"
        users = json.loads(ctl.ctl("user", "list").stdout)["users"]
        assert users == {"alice": "operator", "bob": "viewer"}
        code, status = ctl.status()
        assert code != 0 and not status["running"] and status["agent_bundles"]
    finally:
        ctl.ctl("stop", check=False)
        shutil.rmtree(root, ignore_errors=True)
