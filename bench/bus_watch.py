"""When each node reached a milestone, as the controller's master event bus says: a thread
listening from before the nodes start, so nothing is polled and no salt-run competes with what
is measured.

Milestones: "started" (`salt/minion/<id>/start`: the minion authenticated and connected) and
"probed" (`kubesalt/node/<id>/PROBED`: the reactor's node.probe synced kubesalt's modules to it
and its facts are in the master's cache). A node.probe run that failed is kept with its
answer, to be reported.
"""

import threading
import time

import salt.config
import salt.utils.event

MILESTONES = {"start": "started", "PROBED": "probed"}


class BusWatch:
    def __init__(self, master_conf):
        opts = salt.config.master_config(str(master_conf))
        self._bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
        self._changed = threading.Condition()
        self._seen = {name: {} for name in MILESTONES.values()}
        self.probe_failures = []
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
        elif tag.startswith("salt/run/") and tag.endswith("/ret") and \
                data.get("fun") == "runner.node.probe":
            answer = data.get("return")
            if isinstance(answer, dict) and answer.get("probed") is False:
                with self._changed:
                    self.probe_failures.append(answer.get("reason"))
            return
        if milestone is None:
            return
        with self._changed:
            self._seen[milestone].setdefault(parts[2], moment)
            self._changed.notify_all()

    def times(self, milestone):
        """{node id: monotonic time it was first seen reaching `milestone`}."""
        with self._changed:
            return dict(self._seen[milestone])

    def wait_any(self, milestone, node_ids, timeout, give_up=None):
        """Wait until a node of `node_ids` has reached `milestone`, at most `timeout` seconds
        or until `give_up()` says something (checked each second); returns those that have
        (none on a timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                reached = set(node_ids) & set(self._seen[milestone])
                left = deadline - time.monotonic()
                if reached or left <= 0 or (give_up and give_up()):
                    return reached
                self._changed.wait(timeout=min(1.0, left))
