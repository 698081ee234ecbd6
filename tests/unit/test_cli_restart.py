"""A REST user change restarts the controller only when no operation would be interrupted."""

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from kubesalt.master import cli
from kubesalt.master.controller import config
from kubesalt.master.controller import daemon
from kubesalt.master import layout as layout_mod
from kubesalt.master.verbs import salt_noise
from kubesalt.master.inventory.store import Store
from tests.waiting import wait_for


def test_running_operations_are_those_whose_executor_lives(tmp_path):
    layout = layout_mod.Layout.for_root(tmp_path)
    assert cli.running_operations(layout) == []
    store = Store(layout.state_dir)
    store.create_cluster("c", {})
    stages = [{"name": "etcd", "title": "t", "nodes": [], "skip": ""}]
    store.create_operation("op-live", "c", "provision", stages, lambda pid: True)
    store.start_operation("op-live", os.getpid())
    store.create_cluster("d", {})
    store.create_operation("op-dead", "d", "provision", stages, lambda pid: True)
    store.start_operation("op-dead", 2**22 + 12345)  # above pid_max: never alive
    assert cli.running_operations(layout) == ["op-live"]


# Issue 12: processes of this controller found by their command line (and session), so that a
# kill -9 of a daemon's main process or a salt-run in flight never outlives `stop`.


def fake_salt(tmp_path, name, body):
    """A stand-in for Salt's `name` command: run as `python .../name -c DIR ...` like the
    venv's entry points are."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    script = tmp_path / "bin" / name
    script.write_text(body)
    return [sys.executable, str(script)]


class FakeProc:
    def __init__(self, argv, cwd="/", environ=None):
        self._argv, self._cwd, self._environ = argv, cwd, environ or {}

    def cmdline(self):
        return self._argv

    def cwd(self):
        return self._cwd

    def environ(self):
        return self._environ


def test_ours_is_the_program_with_this_controllers_config_dir(tmp_path):
    layout = layout_mod.Layout.for_root(tmp_path)
    conf = str(layout.conf_dir)
    py, run = "/venv/bin/python3.11", "/venv/bin/salt-run"
    for argv, cwd, env, expected in [
        ([py, run, "-c", conf, "cluster.list"], "/", None, True),
        ([run, f"--config-dir={conf}", "cluster.list"], "/", None, True),
        ([py, run, f"-c{conf}"], "/", None, True),
        ([py, run, "-c", "etc/salt"], str(tmp_path), None, True),
        ([py, run, "cluster.list"], "/", {"SALT_CONFIG_DIR": conf}, True),
        ([py, run, "cluster.list"], "/", None, False),  # /etc/salt
        ([py, run, "-c", str(tmp_path / "other")], "/", None, False),
        ([py, "/venv/bin/salt-key", "-c", conf], "/", None, False),
        (["/bin/sh", run, "-c", conf], "/", None, False),
        ([], "/", None, False),
    ]:
        assert daemon._is_ours(FakeProc(argv, cwd, env), layout, ("salt-run",)) is expected, \
            argv


def test_a_pidfile_naming_someone_elses_process_is_not_running(tmp_path):
    layout = layout_mod.Layout.for_root(tmp_path)
    layout.pidfile.parent.mkdir(parents=True)
    layout.pidfile.write_text(f"{os.getpid()}\n")  # alive, but pytest, not a salt-master
    assert daemon.read_pid(layout) is None


def test_stop_waits_for_short_runners_and_ends_long_ones_with_a_note(tmp_path):
    layout = layout_mod.Layout.for_root(tmp_path)
    runner = fake_salt(tmp_path, "salt-run", "import sys, time\ntime.sleep(float(sys.argv[-1]))\n")
    short = subprocess.Popen([*runner, "-c", str(layout.conf_dir), "x.y", "0.5"])
    long_ = subprocess.Popen([*runner, "-c", str(layout.conf_dir), "x.y", "120"],
                             stderr=subprocess.PIPE, text=True)
    other = subprocess.Popen([*runner, "-c", str(tmp_path / "other"), "x.y", "120"])
    try:
        wait_for(lambda: len(daemon.controller_processes(layout, ("salt-run",))) == 2,
                 timeout=30, what="the runners", interval=0.1)
        assert daemon.end_runners(layout, grace=5) == [long_.pid]
        assert short.wait(timeout=5) == 0
        assert long_.wait(timeout=5) == -signal.SIGKILL
        assert "the controller stopped" in long_.stderr.read()
        assert other.poll() is None
    finally:
        for proc in (short, long_, other):
            proc.kill()
            proc.wait()


def test_orphans_are_a_dead_daemons_processes_and_their_session(tmp_path):
    layout = layout_mod.Layout.for_root(tmp_path)
    master = fake_salt(tmp_path, "salt-master",
                       "import subprocess, time\n"
                       "subprocess.Popen(['sleep', '120'])\n"
                       "time.sleep(120)\n")
    # its own session like a daemonized master; its child's command line names nothing,
    # like Salt's renamed EventPublisher
    proc = subprocess.Popen([*master, "-c", str(layout.conf_dir), "-d"],
                            start_new_session=True)
    try:
        child = wait_for(lambda: psutil.Process(proc.pid).children(), timeout=30,
                         what="the fake master's child", interval=0.1)[0]
        assert {p.pid for p in daemon.orphans(layout, daemon.MASTER)} == {proc.pid, child.pid}
        assert daemon.orphans(layout, daemon.API) == []
        layout.pidfile.parent.mkdir(parents=True)
        layout.pidfile.write_text(f"{proc.pid}\n")  # a live main process: nothing is orphaned
        assert daemon.orphans(layout, daemon.MASTER) == []
        layout.pidfile.unlink()
        assert sorted(daemon.end_orphans(layout, daemon.MASTER)) == sorted([proc.pid, child.pid])
        assert proc.wait(timeout=5) == -signal.SIGTERM
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    finally:
        proc.kill()
        proc.wait()


def test_salt_client_noise_is_dropped_and_nothing_else():
    salt_noise.quiet()
    salt_noise.quiet()  # idempotent: one filter per logger
    logger = logging.getLogger("salt.utils.event")
    assert logger.filters.count(salt_noise._FILTER) == 1
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False  # not to Salt's handlers
    try:
        logger.warning("unclosed %s %r; call ``destroy()`` or use as a context manager",
                       "MasterEvent", object())
        logger.warning("Failed to fire args event")
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
    assert records == ["Failed to fire args event"]
    generated = config.master_config(layout_mod.Layout.for_root(Path("/tmp/x")),
                                     {"interface": "127.0.0.1", "publish_port": 1,
                                      "ret_port": 2})
    assert "log_level" not in generated and "log_granular_levels" not in generated
