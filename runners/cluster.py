"""Operator verbs for clusters: create, show, list, update, delete, installer.

Thin wrappers: the logic is kubesalt.master.clusters, which unit tests call without a master.

    salt-run cluster.create edge1 ha=True dedicated_master=True labels='{env: prod}'
    salt-run cluster.show edge1 --out=json
    salt-run cluster.installer edge1 dest=/root/edge1
"""

import time


from kubesalt.master import clusters, operations, runner_support
from kubesalt.master import provision as provision_mod
from kubesalt.master.store import NotFound

__virtualname__ = "cluster"


def __virtual__():
    return __virtualname__


def _call(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except clusters.ClusterError as exc:
        return runner_support.refused(__context__, exc.errors)


def create(name, **kwargs):
    """Create a cluster. Every option has a default; see README for the list."""
    return _call(clusters.create, runner_support.store(__opts__), name,
                 **runner_support.strip_salt_kwargs(kwargs))


def show(name):
    """Every setting of a cluster with its effective value, its type and the nodes it needs."""
    return _call(clusters.show, runner_support.store(__opts__), name)


def list_():
    """All clusters with their settings."""
    return _call(clusters.list_, runner_support.store(__opts__))


def update(name, **kwargs):
    """Change labels (merged; a label set to null is removed), location, auto_approve,
    blueprint_version, reset_enabled or installer_ttl_days."""
    return _call(clusters.update, runner_support.store(__opts__), name,
                 **runner_support.strip_salt_kwargs(kwargs))


def delete(name):
    """Delete a cluster record and its installer credentials."""
    return _call(clusters.delete, runner_support.store(__opts__), name)


def installer(name, dest=None, rotate=False):
    """Issue installer credentials: writes NAME.pem and NAME-passphrase.txt (0600) to dest.
    rotate=True revokes every earlier set of this cluster's credentials."""
    layout = runner_support.layout(__opts__)
    return _call(clusters.installer, runner_support.store(__opts__),
                 runner_support.controller_settings(__opts__), layout.kubesalt_pki,
                 layout.master_pub, name, dest, rotate=_as_bool(rotate))


def provision(name, wait=False, timeout=3600):
    """Validate the cluster's nodes and start provisioning; returns the operation id. With
    wait=True, reports each stage as it runs and returns the final status. Rerunning after a
    failure resumes at the failed stage; on a READY cluster it joins new configured workers."""
    store = runner_support.store(__opts__)
    layout = runner_support.layout(__opts__)
    try:
        op = provision_mod.start(store, layout, name, _grains,
                                 __opts__["conf_file"].rsplit("/", 1)[0])
    except provision_mod.ProvisionError as exc:
        return runner_support.refused(__context__, exc.errors)
    if not _as_bool(wait):
        return {"operation": op["id"], "cluster": name, "state": op["state"],
                "stages": [s["name"] for s in op["stages"] if s["state"] != "skipped"]}
    final = _follow(store, op["id"], float(timeout))
    if final["state"] != "done":
        __context__["retcode"] = 1
        final["retcode"] = 1
    return final


def _as_bool(value):
    return value is True or str(value).lower() in ("true", "yes", "1")


def _grains(node_id):
    return runner_support.cached_grains(__opts__, node_id)


def _progress(message):
    __jid_event__.fire_event({"message": message}, "progress")


def _follow(store, op_id, timeout):
    """Report stage changes until the operation ends (polls the store: the executor is another
    process)."""
    deadline = time.monotonic() + timeout
    seen = {}
    while True:
        op = store.operation(op_id)
        for stage in op["stages"]:
            if seen.get(stage["name"]) != stage["state"]:
                seen[stage["name"]] = stage["state"]
                if stage["state"] in ("running", "done", "failed"):
                    nodes = ", ".join(stage["nodes"]) or "controller"
                    detail = f": {stage['error']}" if stage["error"] else ""
                    _progress(f"[{op_id}] {stage['name']} {stage['state']} on {nodes}{detail}")
        if op["state"] in ("done", "failed"):
            return operations.status_view(op)
        if time.monotonic() > deadline:
            view = operations.status_view(op)
            view["error"] = f"still {op['state']} after {timeout}s; see cluster.status"
            return view
        time.sleep(1)


def status(name, history=False):
    """The cluster's last operation stage by stage (state, start, duration, nodes, error); with
    history=True every operation."""
    store = runner_support.store(__opts__)
    try:
        record = store.get_cluster(name)
    except NotFound:
        return runner_support.refused(__context__, [{"field": "name",
                                                     "message": f"no cluster named {name!r}"}])
    store.reap_operations(name, provision_mod.process_alive)
    ops = [operations.status_view(op) for op in store.operations(name)]
    result = {"cluster": name, "state": record["state"]}
    if _as_bool(history):
        result["operations"] = ops
    else:
        result["operation"] = ops[-1] if ops else None
    return result


__func_alias__ = {"list_": "list"}
