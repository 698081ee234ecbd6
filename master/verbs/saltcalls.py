"""Every call kubesalt's runners and its engine make into Salt, in one place. Each takes what
it needs explicitly (the master's `opts`, which a runner passes as its __opts__; a job's
event), so nothing here depends on the loader's dunders.

Salt's wheel client and minions answer a failure as data or as the text of a traceback; they
do not raise. So what Salt answered is checked before the caller reports success: a key change
that did not happen raises support.SaltCallFailed naming the key store's answer, and a probe
whose node did not sync or refresh says so in its answer. (An operation's jobs are the
executor's to follow: master/verbs/saltjobs.py.)
"""

import time

import salt.client
import salt.runner
import salt.utils.event
import salt.utils.minions
import salt.wheel

from kubesalt.master.endpoint import gateway
from kubesalt.master.inventory import keys
from kubesalt.master.verbs import support

# How long a probe waits for a node's kubesalt grains after syncing its modules.
PROBE_TIMEOUT = 60
# How long node.logs waits for a node's answer.
AGENT_LOG_TIMEOUT = 20
# How long the controller's last stage of a reset, delete or removal waits for the nodes'
# agents to stop before it deletes their keys (states/kubesalt/agent: removal_delay is 5s).
AGENT_GONE_WAIT = 60
# How long a health check waits for the agents' answers, and for a master's API.
PING_TIMEOUT = 5
READINESS_TIMEOUT = 15


def fire(opts, tag, data):
    """Put an event on the master's bus."""
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
        bus.fire_event(dict(data), tag)  # fire_event stamps the dict it is given


def fire_health(opts, changes):
    """An event for each change a health check found (master/health/check.py):
    kubesalt/cluster/NAME/health or kubesalt/node/ID/health, with the new and previous
    state."""
    for kind, subject, old, new in changes:
        fire(opts, f"kubesalt/{kind}/{subject}/health",
             {kind: subject, "state": new, "previous": old})


def fire_node(opts, node_id, status, data=None):
    """A node's status change: `kubesalt/node/<id>/<status>`, `data` with the id and status."""
    fire(opts, support.node_tag(node_id, status), dict(data or {}, id=node_id, status=status))


def progress(runner_globals):
    """`progress(message)` for a runner that follows an operation: a progress event of its job,
    which salt-run prints as it comes. Takes the runner module's `globals()`: Salt provides
    `__jid_event__` only to a runner run as a job, so it is looked up when a message is
    reported (wait=True), never when a verb merely starts an operation."""
    def report(message):
        # Salt injects __jid_event__ into the globals of one function per runner module;
        # when that function is a support.verb wrapper, those are support's globals.
        event = runner_globals.get("__jid_event__") or vars(support).get("__jid_event__")
        event.fire_event({"message": message}, "progress")

    return report


def cached_grains(opts, node_id):
    """A node's grains from the master's minion data cache ({} before the first probe)."""
    return salt.utils.minions.get_minion_data(node_id, opts)[1] or {}


def connected_ids(opts):
    """The ids of the minions connected to the master now: Salt tells them by the address
    of their publish connection, which for a node behind the agent gateway is the gateway's,
    so the gateway's own record of its live publish channels counts too."""
    ids = set(salt.utils.minions.CkMinions(opts).connected_ids())
    if opts.get("kubesalt", {}).get("controller", {}).get("gateway_port"):
        ids |= gateway.connected(support.layout(opts).gateway_presence)
    return ids


# Where a wheel key.* call is asked to put a key: the state list of Salt's key store that
# must name it afterwards (None: no list may name it), and the verb that says so.
ACCEPTED, REJECTED, DELETED = "minions", "minions_rejected", None
_ACTION = {ACCEPTED: "accept", REJECTED: "reject", DELETED: "delete"}
MAX_ANSWER = 300


def answer_text(answer):
    """A Salt answer as one line: a traceback's last line (the exception) after what precedes
    it, the first line of other text, the repr of data; at most MAX_ANSWER characters."""
    if not isinstance(answer, str):
        text = repr(answer)
    else:
        head, marker, trace = answer.partition("Traceback (most recent call last):")
        lines = [line.strip() for line in (trace if marker else answer).splitlines()
                 if line.strip()]
        if marker:
            text = " ".join(filter(None, (head.strip(), lines[-1] if lines else "")))
        else:
            text = lines[0] if lines else repr(answer)
    return text if len(text) <= MAX_ANSWER else text[:MAX_ANSWER - 3] + "..."


def key_change_failed(ret, node_id, wanted):
    """None when the answer `ret` of a wheel key.accept/reject/delete of `node_id` shows the
    key where it was asked to go (`wanted`: ACCEPTED, REJECTED, or DELETED: nowhere), else a
    message naming the key store's answer. Salt answers with the states the matched keys are
    in afterwards ({} when none is left), or an error as text."""
    failed = f"Salt's key store did not {_ACTION[wanted]} the key of {node_id}"
    if not isinstance(ret, dict):
        return f"{failed}: it answered {answer_text(ret)}"
    held = sorted(state for state, ids in ret.items()
                  if isinstance(ids, (list, tuple)) and node_id in ids)
    if (not held) if wanted is DELETED else (wanted in held):
        return None
    where = (f"the key is {' and '.join(keys.STATES.get(state, state) for state in held)}"
             if held else f"it holds no key of {node_id}")
    return f"{failed}: {where} (it answered {answer_text(ret)})"


def _change_key(opts, fun, node_id, wanted, kwarg=None):
    ret = salt.wheel.WheelClient(opts).cmd(fun, [node_id], kwarg=kwarg, print_event=False)
    return key_change_failed(ret, node_id, wanted)


def accept_key(opts, node_id):
    """Accept a node's pending key; SaltCallFailed unless the key store then holds it
    accepted."""
    problem = _change_key(opts, "key.accept", node_id, ACCEPTED)
    if problem:
        raise support.SaltCallFailed(problem)


def reject_key(opts, node_id):
    """Reject a node's key, pending or accepted; SaltCallFailed unless the key store then
    holds it rejected."""
    problem = _change_key(opts, "key.reject", node_id, REJECTED,
                          kwarg={"include_accepted": True})
    if problem:
        raise support.SaltCallFailed(problem)


def delete_keys(opts, ids):
    """Delete nodes' keys from Salt's key store (and so their minion data cache). Tries every
    one; SaltCallFailed naming each the key store still holds."""
    problems = [problem for problem in (_change_key(opts, "key.delete", node_id, DELETED)
                                        for node_id in ids) if problem]
    if problems:
        raise support.SaltCallFailed("; ".join(problems))


def delete_keys_once_gone(opts, ids, timeout=AGENT_GONE_WAIT):
    """Delete nodes' keys once their agents disconnected (the agent removal stops them a few
    seconds after their last state run): a key deleted while its agent still runs comes back
    as a pending key when that agent next talks to the master. After `timeout`, the keys go
    anyway."""
    deadline = time.monotonic() + timeout
    while set(ids) & connected_ids(opts) and time.monotonic() < deadline:
        time.sleep(0.5)
    delete_keys(opts, ids)


def sync_failed(ret, node_id):
    """None when a LocalClient saltutil.sync_all answer `ret` holds `node_id`'s report of what
    it synced, else why not."""
    answer = ret.get(node_id) if isinstance(ret, dict) else None
    if isinstance(answer, dict):
        return None
    if answer is None:
        return f"{node_id} did not answer saltutil.sync_all"
    return f"saltutil.sync_all failed on {node_id}: {answer_text(answer)}"


def refresh_failed(ret, node_id):
    """None when a LocalClient saltutil.refresh_pillar answer `ret` is True for `node_id`
    (with wait=True: its pillar, and so the grains the master caches, was refreshed), else
    why not."""
    if not isinstance(ret, dict) or node_id not in ret:
        return f"{node_id} did not answer saltutil.refresh_pillar"
    if ret[node_id] is True:
        return None
    return f"saltutil.refresh_pillar failed on {node_id}: it answered " \
           f"{answer_text(ret[node_id])}"


def probe(opts, node_id, timeout=PROBE_TIMEOUT):
    """Sync kubesalt's modules and grains to a node, wait for its grains, and have the master
    cache them: {"probed": True}, or {"probed": False, "reason": ...}."""
    with salt.client.get_local_client(opts["conf_file"]) as client:
        problem = sync_failed(client.cmd(node_id, "saltutil.sync_all",
                                         kwarg={"refresh": True}, timeout=60), node_id)
        if problem:
            return {"probed": False, "reason": problem}
        # sync_all reloads modules asynchronously on the minion: wait until our grains
        # answer, then refresh pillar with wait=True, which is what stores the grains in the
        # master's cache.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = client.cmd(node_id, "grains.get", ["kubesalt_interfaces"], timeout=10)
            if answer.get(node_id):
                problem = refresh_failed(client.cmd(node_id, "saltutil.refresh_pillar",
                                                    kwarg={"wait": True}, timeout=60),
                                         node_id)
                if problem:
                    return {"probed": False, "reason": problem}
                return {"probed": True}
            time.sleep(0.5)
    return {"probed": False, "reason": f"no facts from {node_id} within {timeout}s"}


def agent_log(opts, node_id, lines, max_bytes, timeout=AGENT_LOG_TIMEOUT):
    """A node's answer to kubesalt_agent.log_tail (log_answer). A node
    approved before that module existed gets kubesalt's modules synced once and is asked
    again."""
    with salt.client.get_local_client(opts["conf_file"]) as client:
        def ask():
            return client.cmd(node_id, "kubesalt_agent.log_tail",
                              kwarg={"lines": lines, "max_bytes": max_bytes},
                              timeout=timeout).get(node_id)

        answer = ask()
        if isinstance(answer, str) and "is not available" in answer:
            client.cmd(node_id, "saltutil.sync_modules", timeout=timeout)
            answer = ask()
    return log_answer(answer)


def log_answer(answer):
    """A node's answer to kubesalt_agent.log_tail as agent_logs.from_answer reads it: None
    (no answer) and the module's dict as they are, anything else (Salt's error text, a
    traceback) as {"error": answer_text(answer)}."""
    if answer is None or isinstance(answer, dict):
        return answer
    return {"error": answer_text(answer)}


class HealthProbe:
    """The Salt side of a health check (master/health/check.py), over one LocalClient.
    `kubectl` is the command and connection options on a master (map.jinja's kubectl_cmd)."""

    def __init__(self, opts, kubectl):
        self.client = salt.client.LocalClient(mopts=opts)
        self.kubectl = list(kubectl)

    def close(self):
        self.client.destroy()

    def answering(self, ids):
        """The ids among `ids` whose agent answered a ping within PING_TIMEOUT. (cmd() would
        also ask each silent node whether the job still runs: another gather_job_timeout.)"""
        pub = self.client.run_job(list(ids), "test.ping", tgt_type="list",
                                  timeout=PING_TIMEOUT, listen=True)
        expected = set((pub or {}).get("minions") or [])
        answered = set()
        deadline = time.monotonic() + PING_TIMEOUT
        while expected - answered and time.monotonic() < deadline:
            event = self.client.event.get_event(wait=0.2, tag=f"salt/job/{pub['jid']}/ret/",
                                                full=True)
            data = (event or {}).get("data") or {}
            if data.get("return") is True:
                answered.add(data.get("id"))
        return answered & expected

    def readiness(self, master):
        """Every Kubernetes node's readiness as `master`'s API server reports it, or None.
        A master provisioned before kubesalt_node.readiness existed is synced once."""
        def ask():
            return self.client.cmd(master, "kubesalt_node.readiness", [self.kubectl],
                                   timeout=READINESS_TIMEOUT).get(master)

        answer = ask()
        if isinstance(answer, str) and "is not available" in answer:
            self.client.cmd(master, "saltutil.sync_modules", timeout=READINESS_TIMEOUT)
            answer = ask()
        return answer if isinstance(answer, dict) else None
