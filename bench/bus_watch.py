"""When each node reached a milestone, as the controller's master event bus says: a thread
listening from before the nodes start, so nothing is polled and no salt-run competes with what
is measured.

Milestones: "started" (`salt/minion/<id>/start`: the minion authenticated and connected),
"probed" (`kubesalt/node/<id>/PROBED`: the reactor's node.probe synced kubesalt's modules to it
and its facts are in the master's cache) and "probe_failed" (that node.probe run answered
probed False; its reason is kept, to be reported).
"""

import threading
import time

import salt.config
import salt.utils.event

MILESTONES = {"start": "started", "PROBED": "probed"}
PROBE = "runner.node.probe"


class BusWatch:
    def __init__(self, master_conf):
        opts = salt.config.master_config(str(master_conf))
        self._bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
        self._changed = threading.Condition()
        self._seen = {name: {} for name in (*MILESTONES.values(), "probe_failed")}
        self.probe_failures = {}  # node id -> the reason its probe gave
        self._stopping = False
        self._thread = threading.Thread(target=self._listen, name="bus-watch", daemon=True)

    def __enter__(self):
        # Subscribing happens on the first read; one read before returning means events fired
        # from now on are not missed.
        self._bus.get_event(wait=0.01)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stopping = True
        self._thread.join(timeout=10)
        self._bus.destroy()

    def _listen(self):
        while not self._stopping:
            event = self._bus.get_event(wait=0.5, full=True)
            if event:
                self._record(event["tag"], event.get("data") or {}, time.monotonic())

    def _record(self, tag, data, moment):
        parts = tag.split("/")
        milestone = None
        if len(parts) == 4 and parts[0] in ("salt", "kubesalt") and \
                parts[1] in ("minion", "node"):
            milestone = MILESTONES.get(parts[3])
            node_id = parts[2]
        elif tag.startswith("salt/run/") and tag.endswith("/ret") and data.get("fun") == PROBE:
            answer, node_id = data.get("return"), _probed_node(data.get("fun_args"))
            if isinstance(answer, dict) and answer.get("probed") is False and node_id:
                milestone = "probe_failed"
                with self._changed:
                    self.probe_failures[node_id] = answer.get("reason")
        if milestone is None:
            return
        with self._changed:
            self._seen[milestone].setdefault(node_id, moment)
            self._changed.notify_all()

    def times(self, milestone):
        """{node id: monotonic time it was first seen reaching `milestone`}."""
        with self._changed:
            return dict(self._seen[milestone])

    def wait_any(self, milestones, node_ids, timeout, give_up=None):
        """Wait until a node of `node_ids` has reached one of `milestones`, at most `timeout`
        seconds or until `give_up()` says something (checked each second); returns those that
        have (none on a timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                reached = {node for node in node_ids
                           if any(node in self._seen[m] for m in milestones)}
                left = deadline - time.monotonic()
                if reached or left <= 0 or (give_up and give_up()):
                    return reached
                self._changed.wait(timeout=min(1.0, left))


def _probed_node(fun_args):
    """The node a node.probe run was for, from its arguments as the reactor passed them."""
    for arg in fun_args or ():
        if isinstance(arg, dict) and isinstance(arg.get("node_id"), str):
            return arg["node_id"]
        if isinstance(arg, str) and arg.startswith("node-"):
            return arg
    return None
