"""A stand-in for the scheduler's Salt side (master/verbs/saltjobs.py) in unit tests of the
scheduling logic: jobs answer on the next look at the bus, by a rule the test gives, on a
clock the fake moves forward by the time each look waits. The real side runs in the lab tests
(tests/e2e/test_provision.py, tests/e2e/test_operations_trust.py)."""

import itertools

from kubesalt.master.ops.scheduler import JobNotStarted

OK = {"state_|-ok_|-ok_|-x": {"result": True, "__run_num__": 0, "__id__": "ok", "changes": {}}}


def failed_state(comment):
    return {"cmd_|-broken_|-x_|-run": {"result": False, "__run_num__": 0, "__id__": "broken",
                                       "comment": comment, "changes": {}}}


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class FakeSalt:
    """`answer(node, fun, arg)` gives a job's return data ({"return": ..., "retcode": ...}),
    or None for a job that never returns. `nodes` are the accepted ids (others: not
    started); `connected` the ids connected now."""

    def __init__(self, nodes, answer=None, clock=None):
        self.nodes = set(nodes)
        self.connected_now = set(nodes)
        self.answer = answer or (lambda node, fun, arg: {"return": OK, "retcode": 0})
        self.clock = clock or Clock()
        self.ids = itertools.count(1)
        self.started = []           # (node, fun, arg, kwarg) in publish order
        self.pending = []           # events the next look at the bus finds
        self.running = {}           # jid -> node: jobs that did not return
        self.cache = {}             # (jid, node) -> data
        self.killed = []

    def start(self, node, fun, arg, kwarg, timeout):
        if node not in self.nodes:
            raise JobNotStarted(f"Salt did not send {fun} to {node}")
        jid = f"j{next(self.ids)}"
        self.started.append((node, fun, list(arg), kwarg))
        if fun == "saltutil.find_job":
            alive = arg[0] in self.running
            self.pending.append(self._ret(jid, node, {"return": {"jid": arg[0]} if alive
                                                      else {}, "retcode": 0}))
            return jid
        if fun == "saltutil.kill_job":
            self.killed.append((node, arg[0]))
            self.running.pop(arg[0], None)
            self.pending.append(self._ret(jid, node, {"return": {}, "retcode": 0}))
            return jid
        data = self.answer(node, fun, arg)
        if data is None:
            self.running[jid] = node
        else:
            self.pending.append(self._ret(jid, node, dict(data, fun=fun)))
        return jid

    @staticmethod
    def _ret(jid, node, data):
        return {"kind": "return", "jid": jid, "node": node, "data": data}

    def events(self, wait):
        self.clock.t += wait
        found, self.pending = self.pending, []
        return found

    def connected(self, nodes=()):
        return set(self.connected_now)

    def find_job(self, node, jid):
        return self.start(node, "saltutil.find_job", [jid], {}, 30)

    def kill(self, node, jid):
        return self.start(node, "saltutil.kill_job", [jid], {}, 30)

    def cached_return(self, jid, node):
        return self.cache.get((jid, node))

    def finish(self, jid, data):
        """A job that was running returns now."""
        node = self.running.pop(jid)
        self.pending.append(self._ret(jid, node, data))

    def state_jobs(self):
        """(node, sls) of every state.sls published, in order."""
        return [(node, arg[0]) for node, fun, arg, _ in self.started if fun == "state.sls"]
