"""Running an operation's tasks (master/ops/lanes.py) as Salt jobs, each as soon as what it
needs is done.

Why not an orchestration: Salt's orchestrate runs its steps one after another unless they are
`parallel: True`, and parallel steps break requisite order (saltstack/salt#59959); two
orchestrations at once collide (#57626). So the executor dispatches each task's `state.sls`
job itself, to one node, and follows the jobs' returns on the master's event bus: the order is
exactly the tasks' dependencies, each node goes at its own pace, and a stage's start and end
are known from the jobs without extra calls.

It also follows the nodes: an agent that disconnects (or stops answering: a power cut) during
a job fails its task after a short grace; an agent that reconnects (or restarts) is asked
whether the job still runs (`saltutil.find_job`), and a job that is gone is sent again at once
(once) instead of waiting out the stage's timeout. A cancel stops scheduling and kills the
running jobs.

`salt` is the Salt side (master/verbs/saltjobs.py): start(node, fun, arg, kwarg, timeout) -> jid,
events(wait) -> [event], connected(nodes) -> ids (the busy `nodes` asked whether they are
there), find_job(node, jid) -> jid, kill(node, jid) -> jid, cached_return(jid, node) -> data or
None.
"""

import time

from kubesalt.master.ops import plan

# `state.sls` does not sync custom modules (only a highstate does): a node's first job of the
# operation syncs the two kinds kubesalt ships (salt://_modules, salt://_states) before it
# renders anything, in the same job.
SYNC_MODS = "modules,states"
# How long an agent may be away during a job before its task fails (a quick restart by
# systemd reconnects well within it); how often presence is looked at.
DISCONNECT_GRACE = 20.0
PRESENCE_EVERY = 3.0
# How long a cancel waits for the nodes to confirm their jobs were killed.
KILL_WAIT = 10.0
# How often a node that came back is asked again about a job until it answers (a publish
# right after it reconnected can be missed).
ASK_AGAIN = 5.0
EVENT_WAIT = 0.5


class JobNotStarted(Exception):
    """Salt did not publish a job to the node (e.g. its key is not accepted)."""


class Scheduler:
    def __init__(self, tasks, salt, on_change=None, cancelled=None, clock=time.monotonic,
                 now=time.time, grace=DISCONNECT_GRACE, presence_every=PRESENCE_EVERY):
        self.tasks = tasks
        self.salt = salt
        self.on_change = on_change or (lambda stage: None)
        self.cancelled = cancelled or (lambda: False)
        self.clock, self.now = clock, now
        self.grace, self.presence_every = grace, presence_every
        self.results = {key: {"state": "pending"} for key in tasks}
        self.step = {key: 0 for key in tasks}
        self.jobs = {}      # jid -> {"key": task key, "node", "synced", "deadline"}
        self.busy = {}      # node -> jid of the state job it runs (one at a time per node)
        self.synced = set()  # nodes whose job with SYNC_MODS succeeded
        self.missing = {}   # node -> clock time its agent was first seen disconnected
        self.finds = {}     # find_job jid -> jid it asks about
        self.suspect = {}   # jid -> clock time to ask its node (again) whether it still runs
        self.resent = set()  # tasks whose lost job was sent again
        self.kills = {}     # kill_job jid -> node
        self.cancelling = False
        self._next_presence = clock() + presence_every

    # ---- the loop ---------------------------------------------------------------------------

    def run(self):
        """Run every task that can run; returns when nothing runs and nothing more can start.
        The outcome is in `results` (per task: state, started_at, finished_at, error)."""
        while True:
            if not self.cancelling and self.cancelled():
                self._cancel()
            if self.cancelling:
                if not self.kills or self.clock() > self._kill_deadline:
                    return self.results
            else:
                self._dispatch()
                if not self.jobs:
                    return self.results
            for event in self.salt.events(EVENT_WAIT):
                self._on_event(event)
            self._ask_suspects()
            self._check_deadlines()
            if self.clock() >= self._next_presence:
                self._next_presence = self.clock() + self.presence_every
                self._check_presence()

    def failures(self):
        """[(stage, node, error)] of the tasks that failed."""
        return [(key[0], key[1], r["error"]) for key, r in self.results.items()
                if r["state"] == "failed"]

    # ---- starting work ----------------------------------------------------------------------

    def _ready(self, key):
        state = self.results[key]["state"]
        if state == "running":
            return True  # between two steps
        return state == "pending" and all(self.results[k]["state"] == "done"
                                          for k in self.tasks[key].needs)

    def _dispatch(self):
        for key in [k for k in self.tasks if self._ready(k)]:
            if any(job["key"] == key for job in self.jobs.values()):
                continue
            step = self.tasks[key].steps[self.step[key]]
            if step.node in self.busy:
                continue
            kwarg = {"pillar": {"kubesalt_op": step.op_pillar}, "queue": True}
            if step.node not in self.synced:
                kwarg["sync_mods"] = SYNC_MODS
            try:
                jid = self.salt.start(step.node, "state.sls", [step.sls], kwarg,
                                      self.tasks[key].timeout)
            except JobNotStarted as exc:
                self._finish(key, "failed", str(exc))
                continue
            self.jobs[jid] = {"key": key, "node": step.node, "synced": "sync_mods" in kwarg,
                              "deadline": self.clock() + self.tasks[key].timeout}
            self.busy[step.node] = jid
            if self.results[key]["state"] == "pending":
                self.results[key] = {"state": "running", "started_at": self.now()}
                self.on_change(key[0])
            self.results[key]["jid"] = jid

    # ---- what comes back --------------------------------------------------------------------

    def _on_event(self, event):
        if event["kind"] == "start":
            # the agent started again: a job it ran may have died with it
            self._suspect_jobs_of(event["node"])
            return
        jid, data = event["jid"], event["data"]
        if jid in self.kills:
            self.kills.pop(jid)
            return
        if jid in self.finds:
            asked = self.finds.pop(jid)
            if asked in self.jobs and asked in self.suspect:
                self.suspect.pop(asked)
                if not data.get("return"):
                    self._lost(asked)
            return
        job = self.jobs.get(jid)
        if job is None or event["node"] != job["node"]:
            return
        self._returned(jid, data)

    def _returned(self, jid, data):
        job = self.jobs.pop(jid)
        self.suspect.pop(jid, None)
        node, key = job["node"], job["key"]
        self.missing.pop(node, None)
        error = job_error(data)
        if error is None and job["synced"]:
            self.synced.add(node)
        self.busy.pop(node, None)
        if error is not None:
            self._finish(key, "failed", error)
            return
        self.step[key] += 1
        if self.step[key] == len(self.tasks[key].steps):
            self._finish(key, "done")

    def _finish(self, key, state, error=None):
        result = self.results[key]
        result.update(state=state, finished_at=self.now())
        result.setdefault("started_at", result["finished_at"])
        if error is not None:
            result["error"] = error
        for jid, job in list(self.jobs.items()):
            if job["key"] == key:
                self.jobs.pop(jid)
                if self.busy.get(job["node"]) == jid:
                    self.busy.pop(job["node"])
        self.on_change(key[0])

    def _fail_node_jobs(self, node, error):
        for jid, job in list(self.jobs.items()):
            if job["node"] == node and jid in self.jobs:
                self._fail_job(jid, error)

    # ---- time, presence, cancel -------------------------------------------------------------

    def _check_deadlines(self):
        now = self.clock()
        for jid, job in list(self.jobs.items()):
            if jid in self.jobs and now > job["deadline"]:
                self._kill(job["node"], jid)
                self._fail_job(jid, f"{job['node']} did not finish within "
                                    f"{self.tasks[job['key']].timeout} s")

    def _fail_job(self, jid, error):
        """End job `jid` as failed, and so its task."""
        self._finish(self.jobs[jid]["key"], "failed", error)

    def _check_presence(self):
        nodes = {job["node"] for job in self.jobs.values()}
        if not nodes:
            return
        connected = self.salt.connected(nodes)
        now = self.clock()
        for node in sorted(nodes):
            if node not in connected:
                since = self.missing.setdefault(node, now)
                if now - since >= self.grace:
                    self._fail_node_jobs(node, f"agent disconnected: {node}'s agent has not "
                                               f"answered for {int(now - since)} s; check "
                                               "the node is up and its agent runs "
                                               "(systemctl start kubesalt-minion), then run "
                                               "the command again to resume")
            elif node in self.missing:
                # back: is the job still running there, or did it end with the agent?
                self.missing.pop(node)
                self._suspect_jobs_of(node)

    def _suspect_jobs_of(self, node):
        for jid, job in self.jobs.items():
            if job["node"] == node:
                self.suspect[jid] = self.clock()

    def _ask_suspects(self):
        now = self.clock()
        for jid, when in list(self.suspect.items()):
            if jid not in self.jobs:
                self.suspect.pop(jid)
            elif when <= now:
                self.suspect[jid] = now + ASK_AGAIN
                try:
                    self.finds[self.salt.find_job(self.jobs[jid]["node"], jid)] = jid
                except JobNotStarted:
                    pass

    def _lost(self, jid):
        """The node no longer runs job `jid`: its return may still be in the job cache (it
        came while nobody listened). Otherwise the job ended without one (it died with a
        restarted agent, or never reached an agent that was reconnecting): the step is sent
        again once, every state being idempotent; lost twice, the task fails."""
        job = self.jobs[jid]
        data = self.salt.cached_return(jid, job["node"])
        if data is not None:
            self._returned(jid, data)
            return
        key = job["key"]
        if key not in self.resent:
            self.resent.add(key)
            self.jobs.pop(jid)
            if self.busy.get(job["node"]) == jid:
                self.busy.pop(job["node"])
            self.results[key]["resent"] = True
            return  # still running: _dispatch sends its step again
        self._fail_job(jid, f"agent restarted: {job['node']}'s agent restarted during the "
                            "stage and its job ended without a result, twice; run the "
                            "command again to resume")

    def _kill(self, node, jid):
        try:
            self.kills[self.salt.kill(node, jid)] = node
        except JobNotStarted:
            pass

    def _cancel(self):
        self.cancelling = True
        self._kill_deadline = self.clock() + KILL_WAIT
        for jid, job in list(self.jobs.items()):
            self._kill(job["node"], jid)
            self._finish(job["key"], "cancelled", plan.CANCELLED)
        self.jobs.clear()
        self.busy.clear()
        for key, result in self.results.items():
            if result["state"] == "running":  # between two steps
                self._finish(key, "cancelled", plan.CANCELLED)


def job_error(data):
    """None when a job's return says it succeeded, else why it did not (for a state run: the
    first failing state with its comment, or the render errors)."""
    ret = data.get("return")
    retcode = data.get("retcode", 0)
    if isinstance(ret, dict) and ret and all(isinstance(v, dict) for v in ret.values()):
        comment = failed_state_comment(ret)
        if comment:
            return comment
        if data.get("fun") == "state.sls" or any("__run_num__" in v for v in ret.values()):
            return None if not retcode else f"the state run ended with code {retcode}"
    if data.get("success") is False or retcode:
        if isinstance(ret, list):
            return "; ".join(str(r) for r in ret)[:2000]
        text = str(ret).strip()
        return (text.splitlines()[-1] if text else f"ended with code {retcode}")[:2000]
    return None


def failed_state_comment(states):
    """The first failing state of a state run in run order, as "ID: comment"; None if none
    failed."""
    for result in sorted((s for s in states.values() if isinstance(s, dict)),
                         key=lambda s: s.get("__run_num__", 0)):
        if result.get("result") is False:
            comment = result.get("comment", "")
            if isinstance(comment, list):
                comment = "; ".join(str(c) for c in comment)
            # a failed cmd.run says only 'Command "..." run': its reason is in its stderr
            # (commands that handle secrets hide their output, so none is here)
            stderr = str((result.get("changes") or {}).get("stderr") or "").strip()
            if stderr:
                comment = f"{comment}: {stderr.splitlines()[-1][:500]}"
            return f"{result.get('__id__', '')}: {comment}".strip(": ")
    return None
