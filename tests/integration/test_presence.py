"""The executor's view of its nodes (master/verbs/saltjobs.py) against a real master and a real
minion: a frozen agent (SIGSTOP, as a node that lost power: no FIN, so the master's connection
stays established) counts as gone once it leaves a ping unanswered, and as there again once
it answers."""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import psutil
import salt.config

from kubesalt.master.verbs import saltcalls
from kubesalt.master.verbs.saltjobs import SaltJobs

from tests.waiting import wait_for

from .node import LoopbackNode


def _signal_tree(pid, signum):
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            os.kill(proc.pid, signum)
        except ProcessLookupError:
            pass  # a job's process that ended since it was listed


def test_a_frozen_agent_counts_as_gone_until_it_answers(controller):
    controller.run_ok("cluster.create", "prsc", "auto_approve=True")
    dest = Path(tempfile.mkdtemp(prefix="ksp-"))
    controller.run_ok("cluster.installer", "prsc", f"dest={dest}")
    node = LoopbackNode.from_installer(dest / "n", dest, "prsc", "pppp0001")
    opts = salt.config.master_config(str(controller.conf_dir / "master"))
    jobs = SaltJobs(opts)
    seen = []
    pid = None

    def there():
        seen.extend(jobs.events(0.5))
        return node.id in jobs.connected([node.id])

    try:
        assert node.enroll()[0] == 200
        node.start_minion()
        wait_for(lambda: there() and not jobs.unanswered, 60, "the agent to answer a ping")
        pid = int((node.root / "var" / "run" / "salt-minion.pid").read_text())

        _signal_tree(pid, signal.SIGSTOP)
        wait_for(lambda: not there(), 30, "the frozen agent to count as gone")
        # what the scheduler would have had without the pings
        assert node.id in saltcalls.connected_ids(opts)

        _signal_tree(pid, signal.SIGCONT)
        pid = None
        wait_for(there, 30, "the thawed agent to count as there again")
        # the pings are the executor's own business, never a job's return
        assert jobs.pings and not [e for e in seen if e.get("jid") in jobs.pings]
    finally:
        if pid is not None:
            _signal_tree(pid, signal.SIGCONT)
        jobs.close()
        node.stop_minion()
        shutil.rmtree(dest, ignore_errors=True)
