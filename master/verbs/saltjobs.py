"""The Salt side of the operation scheduler (master/ops/scheduler.py): jobs published to one
node each through Salt's LocalClient, their returns and the agents' start events read from the
master's event bus, presence from the master's connections and the agents' answers.

A connection alone does not prove an agent is there: a node that loses power sends no FIN, and
the master keeps its TCP connection "established" until keepalive gives up (hours). So the nodes
running jobs are pinged every PING_EVERY seconds, and one that has left a ping unanswered for
SILENT_AFTER seconds counts as disconnected until it answers again (any return does).

One bus subscription lives as long as the executor, opened before the first job is published,
so no return can come before anyone listens; a return missed anyway (a bus reconnect) is still
in Salt's job cache, which the scheduler reads when a node says the job is gone.
"""

import time

import salt.client
import salt.utils.event

from kubesalt.master.ops.scheduler import JobNotStarted
from kubesalt.master.verbs import saltcalls

RETURN_TAG = "salt/job/"
START_TAG = "salt/minion/"
# A busy node answers test.ping within a second or two even on a loaded machine; a frozen or
# powered-off one never does. How often the busy nodes are asked, and how long an unanswered
# question makes a node count as gone.
PING_EVERY = 5.0
SILENT_AFTER = 6.0


class SaltJobs:
    def __init__(self, opts):
        self.opts = opts
        self.bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
        self.client = salt.client.LocalClient(mopts=opts)
        self.pings = set()      # jids of the presence pings
        self.unanswered = {}    # node -> monotonic time of its oldest unanswered ping
        self.next_ping = 0.0

    def close(self):
        self.bus.destroy()
        self.client.destroy()

    def start(self, node, fun, arg, kwarg, timeout):
        """Publish `fun` to `node` alone; its job id."""
        pub = self.client.run_job([node], fun, arg=list(arg), tgt_type="list", kwarg=kwarg,
                                  timeout=timeout)
        if not pub or node not in (pub.get("minions") or []):
            raise JobNotStarted(f"Salt did not send {fun} to {node}: its key is not accepted "
                                "on the controller (see salt-run node.show)")
        return pub["jid"]

    def find_job(self, node, jid):
        return self.start(node, "saltutil.find_job", [jid], {}, 30)

    def kill(self, node, jid):
        return self.start(node, "saltutil.kill_job", [jid], {}, 30)

    def events(self, wait):
        """The job returns and agent starts on the bus within `wait` seconds (all of those
        already there, without waiting, once one came)."""
        found = []
        event = self.bus.get_event(wait=wait, full=True)
        while event is not None:
            parsed = _parse(event)
            if parsed is not None:
                self.unanswered.pop(parsed["node"], None)  # it answered something: it is there
                if parsed.get("jid") not in self.pings:
                    found.append(parsed)
            event = self.bus.get_event(no_block=True, full=True)
        return found

    def fire(self, tag, data):
        """Put an event on the master's bus (a stage's change)."""
        self.bus.fire_event(dict(data), tag)

    def connected(self, nodes=()):
        """The ids connected to the master now, less those of `nodes` that left a ping
        unanswered for SILENT_AFTER seconds; pings `nodes` every PING_EVERY seconds."""
        present = saltcalls.connected_ids(self.opts)
        now = time.monotonic()
        asked = sorted(set(nodes) & present)
        if asked and now >= self.next_ping:
            self.next_ping = now + PING_EVERY
            pub = self.client.run_job(asked, "test.ping", tgt_type="list", timeout=30)
            if pub:
                self.pings.add(pub["jid"])
                for node in pub.get("minions") or ():
                    self.unanswered.setdefault(node, now)
        silent = {node for node, since in self.unanswered.items()
                  if now - since >= SILENT_AFTER}
        return present - silent

    def cached_return(self, jid, node):
        """Node's return of `jid` from the master's job cache, or None."""
        get_jid = self.client.returners[f"{self.opts['master_job_cache']}.get_jid"]
        found = (get_jid(jid) or {}).get(node)
        if not isinstance(found, dict) or "return" not in found:
            return None
        return {"return": found["return"], "retcode": found.get("retcode", 0),
                "success": found.get("success", True)}


def _parse(event):
    tag, data = event.get("tag", ""), event.get("data") or {}
    parts = tag.split("/")
    if tag.startswith(RETURN_TAG) and len(parts) == 5 and parts[3] == "ret":
        return {"kind": "return", "jid": parts[2], "node": parts[4], "data": data}
    if tag.startswith(START_TAG) and len(parts) == 4 and parts[3] == "start":
        return {"kind": "start", "node": parts[2]}
    return None
