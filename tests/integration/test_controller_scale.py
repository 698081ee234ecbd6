"""`python -m bench.controller_scale` with a few nodes, so the benchmark's code path cannot rot:
the counts it reports are what happened, and it leaves no process and no file behind, also
when interrupted with Ctrl-C."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir():
    # Short (Salt's IPC socket paths live below it), and the bench's TMPDIR: everything it
    # creates, the controller's root and every node's, is below this directory.
    path = Path(tempfile.mkdtemp(prefix="ksb-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def bench(workdir, *args):
    return subprocess.Popen([sys.executable, "-m", "bench.controller_scale", *args],
                            cwd=REPO, env=dict(os.environ, TMPDIR=str(workdir)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def processes_under(workdir):
    """Processes whose command line names a path below `workdir`: the bench's salt-minions
    (-c <node root>/etc/salt) and the controller's daemons (-c <controller root>/etc/salt)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(workdir) in arg for arg in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def minions_under(workdir):
    return [p for p in processes_under(workdir)
            if any(arg.endswith("salt-minion") for arg in p.info["cmdline"])]


def test_the_counts_it_reports_are_what_happened(workdir):
    proc = bench(workdir, "--nodes", "3", "--window", "2", "--idle", "1", "--pings", "2",
                 "--list-runs", "1")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["enroll"]["answered_approved"] == 3 and result["enroll"]["approved"] == 3
    onboard = result["onboard"]
    assert (onboard["connected"], onboard["probed"]) == (3, 3)
    assert (onboard["not_probed"], onboard["probe_failed"]) == ([], {})
    probed_by_sample = [sample["nodes"] for sample in onboard["growth"]]
    assert probed_by_sample == sorted(probed_by_sample) and probed_by_sample[-1] == 3
    assert result["ping"]["answered"] == [3, 3] and len(result["ping"]["runs_s"]) == 2
    assert result["node_list_0"]["rows"] == 0 and result["node_list_n"]["rows"] == 3
    assert result["minions"]["processes"] == 3  # one process a minion, keepalive left out
    master = result["controller"]["salt-master"]
    assert master["cpu_s_onboard"] > 0 and master["pss_mb_n"] > 0
    assert "3 APPROVED" in out  # the readable summary
    assert "3 connected, 3 probed (0 probes failed" in out
    assert processes_under(workdir) == []
    assert list(workdir.iterdir()) == []


def test_ctrl_c_ends_every_process_it_started(workdir):
    proc = bench(workdir, "--nodes", "2", "--window", "2", "--idle", "600")
    try:
        wait_for(lambda: len(minions_under(workdir)) == 2, 300, "the two minions")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert processes_under(workdir) == []
    assert list(workdir.iterdir()) == []
