"""conjurer pieces that need no node: flags, identity, agent files, removal, the zipapp."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubesalt.master import conjurer_zipapp
from kubesalt.minion_bootstrap import agent, cli, identity

CONTROLLER = {"address": "10.77.0.1", "publish_port": 4505, "ret_port": 4506,
              "https_port": 4507, "master_finger": "aa:bb"}


@pytest.mark.parametrize("argv", [
    ["-edge-name=edge1", "-passphrase-file=p.txt", "-creds-file=c.pem", "-t", "-m"],
    ["--edge-name", "edge1", "--passphrase-file", "p.txt", "--creds-file=c.pem", "--t", "--m"],
    ["-edge-name", "edge1", "-passphrase-file", "p.txt", "-creds-file", "c.pem", "-t", "-m"],
])
def test_flags_take_one_or_two_dashes(argv):
    args = cli.parser().parse_args(argv)
    assert (args.edge_name, args.passphrase_file, args.creds_file) == ("edge1", "p.txt", "c.pem")
    assert args.preflight_report and args.multi_minion and not args.delete


def test_unknown_flag_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parser().parse_args(["-edge=edge1"])
    assert exc.value.code == 2


def test_node_name_is_stable_and_valid(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    first = identity.node_identity(str(tmp_path), "edge1", "127.0.0.1", 4506)
    second = identity.node_identity(str(tmp_path), "edge1", "127.0.0.1", 4506)
    assert first == second
    assert first.name == f"node-{first.short_id}-127-0-0-1-edge1"
    assert len(first.name) <= 63


def test_minion_config_keeps_away_from_customer_paths():
    config = json.loads(agent.minion_config("node-x-10-77-0-11-edge1", "edge1", CONTROLLER))
    assert config["root_dir"] == "/opt/kubesalt/salt"
    assert config["master_finger"] == "aa:bb"
    assert config["master_port"] == 4506 and config["publish_port"] == 4505
    assert all(p.startswith("/opt/kubesalt/") for p in config["utils_dirs"])
    assert config["grains"]["kubesalt"]["cluster"] == "edge1"


def test_remove_touches_only_kubesalt(tmp_path):
    customer = tmp_path / "etc" / "salt" / "minion"
    customer.parent.mkdir(parents=True)
    customer.write_text("master: customer\n")
    node_agent = agent.Agent(root=str(tmp_path), run=lambda argv, **kw: subprocess.
                             CompletedProcess(argv, 0, "", ""))
    node_agent.configure("node-x-10-77-0-11-edge1", "edge1", CONTROLLER)
    node_agent.write_enrollment("node-x-10-77-0-11-edge1", "edge1", CONTROLLER, "s1")
    assert node_agent.enrollment()["cluster"] == "edge1"
    assert oct(os.stat(tmp_path / "opt/kubesalt/enrollment.json").st_mode & 0o777) == "0o600"
    removed = node_agent.remove()
    assert removed == ["/opt/kubesalt"]
    assert not (tmp_path / "opt" / "kubesalt").exists()
    assert customer.read_text() == "master: customer\n"
    assert identity.customer_minion_present(str(tmp_path))


def test_zipapp_runs_with_only_the_standard_library(tmp_path):
    target = conjurer_zipapp.build(tmp_path / "conjurer")
    assert os.access(target, os.X_OK)
    assert conjurer_zipapp.build(tmp_path / "again").read_bytes() == target.read_bytes()
    interpreters = [sys.executable] + [str(p) for p in Path("/root/.pyenv/versions").glob(
        "3.8*/bin/python3.8")]
    for python in interpreters:
        proc = subprocess.run([python, "-I", "-S", str(target), "--help"], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, (python, proc.stderr)
        assert "-edge-name" in proc.stdout
