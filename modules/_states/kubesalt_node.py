"""States for the day-2 steps on the node an operation names (pillar kubesalt_op:node):
drained, uncordoned, absent from Kubernetes, its etcd member removed. Each decides with the
kubesalt_node execution module and acts through it; with test=True each says what it would do
and changes nothing. A failure the API may get over (unreachable, restarting) fails the state,
so the SLS's `retry` tries again.

Synced to kubesalt's minions from salt://_states with the execution module.
"""

__virtualname__ = "kubesalt_node"


def __virtual__():
    if "kubesalt_node.node_lookup" in __salt__:
        return __virtualname__
    return (False, "the kubesalt_node execution module is not synced")


def _ret(name, result=True, comment="", changes=None):
    return {"name": name, "result": result, "comment": comment, "changes": changes or {}}


def _failure(result):
    """The last line of a failed command's stderr (or stdout), for the comment."""
    text = (result.get("stderr") or result.get("stdout") or "").strip()
    return text.splitlines()[-1] if text else f"exit code {result.get('retcode')}"


def _act(name, what, run):
    """Run `run()` (a cmd.run_all result) unless test=True: `what` was done to `name`."""
    if __opts__["test"]:
        return _ret(name, None, f"{name} would be {what}", {what: name})
    result = run()
    if result.get("retcode") != 0:
        return _ret(name, False, f"{name} could not be {what}: {_failure(result)}")
    return _ret(name, comment=f"{name} {what}", changes={what: name})


def _on_known_node(name, kubectl, what, run):
    """`_act` on a node Kubernetes knows. A node it does not know needs nothing; an API server
    that does not answer fails the state, for the SLS's retry."""
    lookup = __salt__["kubesalt_node.get_node"](name, kubectl)
    known = __salt__["kubesalt_node.node_lookup"](lookup)
    if known == "absent":
        return _ret(name, comment=f"Kubernetes does not know node {name}")
    if known == "unreachable":
        return _ret(name, False, f"cannot ask the API server about node {name}: "
                                 f"{_failure(lookup)}")
    return _act(name, what, run)


def drained(name, kubectl, timeout="300s"):
    """Pods evicted from node `name` (DaemonSet pods stay) and the node cordoned. `kubectl`
    is the command with its kubeconfig, as a list."""
    return _on_known_node(name, kubectl, "drained",
                          lambda: __salt__["kubesalt_node.drain"](name, kubectl, timeout))


def absent(name, kubectl):
    """Node `name` deleted from Kubernetes."""
    return _on_known_node(name, kubectl, "deleted",
                          lambda: __salt__["kubesalt_node.delete_node"](name, kubectl))


def uncordoned(name, kubectl):
    """Node `name` takes pods again: uncordoned unless the API server answers that it is
    schedulable (when it does not answer, the uncordon fails too, for the SLS's retry)."""
    if __salt__["kubesalt_node.schedulable"](name, kubectl):
        return _ret(name, comment=f"node {name} is schedulable")
    return _act(name, "uncordoned",
                lambda: __salt__["kubesalt_node.uncordon"](name, kubectl))


def etcd_member_absent(name, etcdctl):
    """No etcd member is named `name` (members are named after their node). `etcdctl` is the
    command with its endpoint and certificates, as a list."""
    listing = __salt__["kubesalt_node.etcd_member_list"](etcdctl)
    if listing.get("retcode") != 0:
        return _ret(name, False, f"cannot list the etcd members: {_failure(listing)}")
    ids = __salt__["kubesalt_node.etcd_member_ids"](listing.get("stdout"), name)
    if not ids:
        return _ret(name, comment=f"etcd has no member {name}")

    def remove():
        for member_id in ids:
            result = __salt__["kubesalt_node.etcd_member_remove"](member_id, etcdctl)
            if result.get("retcode") != 0:
                return result
        return result

    return _act(name, "removed from etcd", remove)
