"""Approved nodes whose probe failed, or never ran, get probed again.

The reactor probes a node when its minion starts (node.probe). On a starved master that
probe times out, and nothing tried again until the minion restarted: the node stayed
APPROVED with no facts, so it could not be configured (bench/README.md, the 60-node run).
The health engine, which pings every approved node anyway, asks for another probe of a
node that answers but has no probed facts once it has been so for `retry_every` seconds
(which also leaves a node's first probe, started by its minion's start, time to finish)
and again each `retry_every` seconds while it stays so.
"""

RETRY_EVERY = 120.0


class Reprobe:
    def __init__(self, retry_every=RETRY_EVERY):
        self.retry_every = float(retry_every)
        self._waiting_since = {}  # node id -> when it was last seen unprobed first, or tried

    def due(self, answering, probed, now):
        """The ids among `answering` (approved nodes whose agent answers) to probe now;
        `probed(id)` tells whether a node has its probed facts."""
        due = []
        for node_id in sorted(answering):
            if probed(node_id):
                self._waiting_since.pop(node_id, None)
                continue
            since = self._waiting_since.setdefault(node_id, now)
            if now - since >= self.retry_every:
                self._waiting_since[node_id] = now
                due.append(node_id)
        for node_id in set(self._waiting_since) - set(answering):
            del self._waiting_since[node_id]  # gone or silent: its minion's start probes it
        return due
