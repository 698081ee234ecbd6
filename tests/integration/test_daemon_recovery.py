"""The controller recovers from its own processes dying or outliving it (issue 12): a
kill -9 of the salt-master's or salt-api's main process, and salt-run processes still running
when it stops. Each test has its own controller, since each breaks or stops it."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import psutil
import pytest

from ..waiting import wait_for
from .controller import BIN, Controller, _env, last_json

pytestmark = pytest.mark.integration

# A runner synced into the controller from its file_roots, as any site's own runner would
# be: `follow` waits on an operation exactly as `cluster.provision NAME wait=True` does, and
# `warn` logs a warning from a logger kubesalt does not quiet.
TEST_RUNNER = '''
import logging

from kubesalt.master.verbs import support as runner_support

log = logging.getLogger(__name__)


def follow(op_id, timeout=600):
    store = runner_support.store(__opts__)
    return runner_support.started(
        __context__, store, store.operation(op_id), True, timeout,
        lambda message: __jid_event__.fire_event({"message": message}, "progress"))


def warn(text):
    log.warning("kstest: %s", text)
    return True
'''


def processes_of(ctl, sessions=()):
    """Every live process whose command line names this controller's configuration, or that
    is in one of `sessions` (Salt renames some children, e.g. EventPublisher, so their
    command line no longer says whose they are)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            in_session = os.getsid(proc.pid) in sessions
        except OSError:
            continue
        if in_session or any(str(ctl.conf_dir) in arg for arg in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


@pytest.fixture
def ctl():
    # A short root: Salt's IPC socket paths must stay under the 107-byte Unix limit.
    root = tempfile.mkdtemp(prefix="ksr-")
    controller = Controller(root)
    controller.init()
    controller.start()
    yield controller
    controller.stop()
    # whatever a failed test left behind must not outlive it
    for proc in processes_of(controller):
        proc.kill()
    shutil.rmtree(root, ignore_errors=True)


def salt_run(ctl, *args):
    return subprocess.Popen(
        [str(BIN / "salt-run"), "-c", str(ctl.conf_dir), "--out=json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        stdin=subprocess.DEVNULL)


def wait_in_runner(ctl, proc):
    """Until salt-run runs the runner function: Salt records the job under proc/ first."""
    jobs = ctl.root / "var" / "cache" / "salt" / "master" / "proc"
    wait_for(lambda: proc.poll() is not None or (jobs.is_dir() and any(jobs.iterdir())),
             timeout=60, what="salt-run to start its runner", interval=0.2)
    assert proc.poll() is None, proc.communicate()


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_start_and_stop_recover_after_master_main_process_killed(ctl):
    pid = ctl.status()[1]["pid"]
    session = os.getsid(pid)
    children = {p.pid for p in psutil.Process(pid).children(recursive=True)}
    assert children
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid), timeout=30, what="the master's main process to die",
             interval=0.2)

    code, status = ctl.status()
    assert code == 3 and status["running"] is False
    assert children <= set(status["orphans"]), status
    assert "stop" in status["hint"] and "start" in status["hint"]

    started = ctl.start()
    assert started["running"] is True and started["orphans"] == []
    assert started["pid"] != pid
    assert not [c for c in children if not gone(c)]
    assert ctl.run_ok("cluster.list") == []

    assert ctl.stop().returncode == 0
    assert processes_of(ctl, {session, os.getsid(started["pid"])}) == []


def test_start_and_stop_recover_after_api_main_process_killed(ctl):
    _, status = ctl.status()
    pid = status["api_pid"]
    sessions = {os.getsid(pid)}
    children = {p.pid for p in psutil.Process(pid).children(recursive=True)}
    assert children
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: gone(pid), timeout=30, what="salt-api's main process to die",
             interval=0.2)

    code, status = ctl.status()
    assert status["api_running"] is False
    assert children <= set(status["orphans"]), status

    started = ctl.start()
    assert started["api_running"] is True and started["api_pid"] != pid
    assert started["orphans"] == []
    assert not [c for c in children if not gone(c)]

    # a stop with the API's main process killed again leaves nothing of the controller
    sessions |= {os.getsid(started["api_pid"]), os.getsid(started["pid"])}
    os.kill(started["api_pid"], signal.SIGKILL)
    assert ctl.stop().returncode == 0
    assert processes_of(ctl, sessions) == []


def test_stop_ends_a_long_runner_quietly(ctl):
    runner = salt_run(ctl, "test.sleep", "120")
    wait_in_runner(ctl, runner)

    began = time.monotonic()
    assert ctl.stop().returncode == 0
    # stop waits for it; without stop ending it, salt-run lived on for 90 s and more
    assert time.monotonic() - began < 60
    out, err = runner.communicate(timeout=5)
    assert runner.returncode != 0
    assert "the controller stopped" in err
    assert "Traceback" not in out + err
    assert processes_of(ctl) == []


def test_stop_lets_a_runner_following_an_operation_report_the_interruption(ctl):
    store_dir = ctl.root / "var" / "lib" / "kubesalt"
    runners = store_dir / "files" / "_runners"
    runners.mkdir(parents=True)
    (runners / "kstest.py").write_text(TEST_RUNNER)
    assert ctl.run_ok("saltutil.sync_runners") == ["runners.kstest"]
    from kubesalt.master.inventory.store import Store

    store = Store(store_dir)
    store.create_cluster("follow1", {})
    store.create_operation("op-follow1", "follow1", "provision",
                           [{"name": "etcd", "title": "etcd", "nodes": [], "skip": ""}],
                           lambda pid: True)
    # an executor that never progresses, in its own session as launch.spawn_executor's are
    executor = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        store.start_operation("op-follow1", executor.pid)
        store.stage_started("op-follow1", "etcd")
        follower = salt_run(ctl, "kstest.follow", "op-follow1")
        wait_in_runner(ctl, follower)

        assert ctl.stop().returncode == 0
        out, err = follower.communicate(timeout=5)
    finally:
        executor.kill()
        executor.wait()
    # it ended by itself (a killed salt-run exits -9) with the operation's final status
    assert follower.returncode == 1, (out, err)
    assert "Traceback" not in out + err
    final = last_json(out)
    assert final["state"] == "failed"
    assert "the controller stopped" in final["error"]
    assert store.operation("op-follow1")["state"] == "failed"
    assert processes_of(ctl) == []


def test_salt_run_prints_no_salt_noise_but_other_warnings(ctl):
    proc = subprocess.run(
        [str(BIN / "salt-run"), "-c", str(ctl.conf_dir), "--out=json", "cluster.list"],
        capture_output=True, text=True, timeout=120, env=_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0
    assert proc.stderr == ""
    runners = ctl.root / "var" / "lib" / "kubesalt" / "files" / "_runners"
    runners.mkdir(parents=True)
    (runners / "kstest.py").write_text(TEST_RUNNER)
    ctl.run_ok("saltutil.sync_runners")
    proc = subprocess.run(
        [str(BIN / "salt-run"), "-c", str(ctl.conf_dir), "--out=json", "kstest.warn", "hello"],
        capture_output=True, text=True, timeout=120, env=_env(), stdin=subprocess.DEVNULL)
    assert proc.returncode == 0
    assert proc.stderr.strip() == "[WARNING ] kstest: hello"
