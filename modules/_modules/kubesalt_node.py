"""What the day-2 states decide about a node, in Python rather than in Jinja and shell.

Synced to kubesalt's minions from salt://_modules by each node's first job of an operation
(state.sls sync_mods, master/ops/scheduler.py). The decisions are pure functions of a
command's output, unit-tested with the cases in
tests/unit/modules/files/test_kubesalt_node.yaml; the actions run kubectl or etcdctl with
argument lists, the same command lines the states ran before.
`kubectl` and `etcdctl` are the command with its connection options as a list, as map.jinja
gives them (kubectl_cmd, etcdctl_cmd).
"""

import json

__virtualname__ = "kubesalt_node"

PRESENT, ABSENT, UNREACHABLE = "present", "absent", "unreachable"


def __virtual__():
    return __virtualname__


# -- decisions -------------------------------------------------------------------------------


def etcd_member_ids(listing, name):
    """IDs of the members named `name` in `etcdctl member list` output (one member per line:
    "ID, status, name, peer URLs, client URLs[, is learner]"). The name must match exactly;
    a learner is a member like any other; an unstarted member has no name yet."""
    ids = []
    for line in (listing or "").splitlines():
        fields = [field.strip() for field in line.split(", ")]
        if len(fields) >= 3 and fields[2] == name and fields[0]:
            ids.append(fields[0])
    return ids


def node_lookup(result):
    """What `kubectl get node NAME` answered (a cmd.run_all result): present, absent (the API
    says NotFound), or unreachable (any other failure: the API server is down, restarting or
    refused; worth a retry)."""
    output = "{}\n{}".format(result.get("stdout") or "", result.get("stderr") or "")
    if "NotFound" in output:
        return ABSENT
    if result.get("retcode") == 0:
        return PRESENT
    return UNREACHABLE


def is_schedulable(result):
    """Whether `kubectl get node NAME -o jsonpath={.spec.unschedulable}` answered that the node
    takes pods (the field is empty or false). A failed query says nothing: not schedulable."""
    return result.get("retcode") == 0 and (result.get("stdout") or "").strip() != "true"


def readiness_of(result):
    """{node name: {"ready": "True"|"False"|"Unknown", "reason"}} from what
    `kubectl get nodes -o json` answered (a cmd.run_all result), or None when the API did not
    answer with a node list: then nothing is known about any node. A node without a Ready
    condition yet is Unknown, as kubectl shows it."""
    if result.get("retcode") != 0:
        return None
    try:
        listing = json.loads(result.get("stdout") or "")
    except ValueError:
        return None
    if not isinstance(listing, dict) or not isinstance(listing.get("items"), list):
        return None
    found = {}
    for item in listing["items"]:
        name = ((item or {}).get("metadata") or {}).get("name")
        if not name:
            continue
        conditions = ((item.get("status") or {}).get("conditions")) or []
        ready = next((c for c in conditions if c.get("type") == "Ready"), {})
        found[name] = {"ready": str(ready.get("status", "Unknown")),
                       "reason": ready.get("reason") or ready.get("message") or None}
    return found


# -- actions ---------------------------------------------------------------------------------


def _run(argv):
    return __salt__["cmd.run_all"](list(argv), python_shell=False, ignore_retcode=True)


def get_node(name, kubectl, output=None):
    """`kubectl get node NAME [-o OUTPUT]`: the cmd.run_all result."""
    return _run(list(kubectl) + ["get", "node", name] + (["-o", output] if output else []))


def schedulable(name, kubectl):
    return is_schedulable(get_node(name, kubectl, "jsonpath={.spec.unschedulable}"))


def drain(name, kubectl, timeout):
    return _run(list(kubectl) + ["drain", name, "--ignore-daemonsets", "--delete-emptydir-data",
                                 f"--timeout={timeout}"])


def uncordon(name, kubectl):
    return _run(list(kubectl) + ["uncordon", name])


def delete_node(name, kubectl):
    return _run(list(kubectl) + ["delete", "node", name, "--ignore-not-found"])


def etcd_member_list(etcdctl):
    return _run(list(etcdctl) + ["member", "list"])


def etcd_member_remove(member_id, etcdctl):
    return _run(list(etcdctl) + ["member", "remove", member_id])


def readiness(kubectl):
    """Every Kubernetes node's readiness as this master's API server reports it
    (readiness_of); what the controller's health checks ask."""
    return readiness_of(_run(list(kubectl) + ["get", "nodes", "-o", "json"]))
