"""Running an operation (provision, upgrade, reset, remove-node); master/ops/status.py reads
its record for people.

The executor renders the orchestration from the operation's stages (the plan as data), lets
Salt run it, and records the outcome: which stage failed, on which node, with the failing
state's comment. Stage start/finish times are recorded by the orchestration itself, through the
`operation.stage_*` runners, so `cluster.status` shows a stage as running while it runs. The
stages that target the controller come last and are done by the executor itself, through the
callables its caller passes (they need Salt's key store, which this module does not touch).
"""

import os

from kubesalt.master.ops import plan

ORCHESTRATION = "orch.operation"


# What a node is while an operation works on it, and what the cluster is meanwhile (None:
# the cluster's state does not change, e.g. while one node is removed).
BUSY = {"provision": ("PROVISIONING", "PROVISIONING"), "upgrade": ("UPGRADING", "UPGRADING"),
        "reset": ("RESETTING", "RESETTING"), "remove-node": ("REMOVING", None)}


def orchestration_pillar(op):
    """What the orchestration renders from: the operation's node stages (names and nodes, as
    recorded) with what the plan says each applies, in parallel or not, for how long, and
    whether each node is drained around it; `params` go to every node as pillar
    `kubesalt_op` (e.g. the node a removal takes out). `nodes` are every node the stages
    target (with the one drained from), which get kubesalt's modules synced first."""
    by_name = {stage.name: stage for stage in plan.PLANS[op["kind"]]}
    first_master = next((s["nodes"][0] for s in op["stages"]
                         if by_name[s["name"]].targets == "first_master" and s["nodes"]), None)
    stages = [{"name": s["name"], "title": s["title"], "nodes": s["nodes"],
               "sls": by_name[s["name"]].sls, "parallel": by_name[s["name"]].parallel,
               "timeout": by_name[s["name"]].timeout, "drain": by_name[s["name"]].drain}
              for s in op["stages"]
              if s["state"] != "skipped" and by_name[s["name"]].targets != "controller"]
    nodes = {n for s in stages for n in s["nodes"]}
    if first_master and any(s["drain"] and s["nodes"] for s in stages):
        nodes.add(first_master)
    return {"kubesalt_operation": {
        "id": op["id"],
        "cluster": op["cluster"],
        "params": op.get("params") or {},
        "drain_from": first_master,
        "nodes": sorted(nodes),
        "stages": stages,
    }}


def _stage_of(state_key):
    # state keys look like "salt_|-Run stage etcd_|-Run stage etcd_|-state", or with a node
    # for drained stages: "Run stage upgrade-workers (drain node-1)"
    parts = state_key.split("_|-")
    label = parts[1] if len(parts) > 1 else state_key
    for prefix in ("Run stage ", "Start stage ", "Finish stage "):
        if label.startswith(prefix):
            return label[len(prefix):].split(" ", 1)[0]
    return None


def failures(orchestrate_return):
    """[(stage, node or None, comment)] for every failed step of an orchestrate return."""
    found = []
    data = orchestrate_return.get("data", orchestrate_return) if isinstance(
        orchestrate_return, dict) else {}
    for master_result in data.values():
        if not isinstance(master_result, dict):
            found.append((None, None, str(master_result)))
            continue
        for key, result in sorted(master_result.items(),
                                  key=lambda kv: kv[1].get("__run_num__", 0)
                                  if isinstance(kv[1], dict) else 0):
            if not isinstance(result, dict) or result.get("result") is not False:
                continue
            stage = _stage_of(key)
            minions = (result.get("changes") or {}).get("ret") or {}
            per_node = [(node, _failed_comment(states)) for node, states in sorted(
                minions.items()) if _failed_comment(states)]
            if per_node:
                found.extend((stage, node, comment) for node, comment in per_node)
            else:
                found.append((stage, None, result.get("comment", "failed")))
    return found


def _failed_comment(states):
    if not isinstance(states, dict):
        return str(states) if states else None
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


def mark_ready(store, op):
    """The `ready` stage of provisioning and upgrade: the cluster and its nodes are READY."""
    store.set_node_phase(_node_ids(op), "READY")
    store.set_cluster_state(op["cluster"], "READY")


def _node_ids(op):
    """The nodes an operation is about: a removal's one node (the master it drains from is
    only a means), every node of the other operations."""
    if op["kind"] == "remove-node":
        return [op["params"]["node"]]
    return sorted({n for s in op["stages"] for n in s["nodes"]})


def execute(store, run_orchestration, op_id, prepare=None, controller_stages=None):
    """Run operation `op_id` to its end. `run_orchestration(mods, pillar)` returns the
    orchestrate return; `prepare(cluster)` issues what the
    nodes' pillar needs first (certificates.prepare);
    `controller_stages` maps the name of each stage the controller does to a callable
    `(store, op)`, run in plan order once every node stage succeeded (default: `ready`)."""
    controller_stages = {"ready": mark_ready, **(controller_stages or {})}
    op = store.operation(op_id)
    cluster = op["cluster"]
    node_phase, cluster_state = BUSY[op["kind"]]
    node_ids = _node_ids(op)
    store.start_operation(op_id, os.getpid())
    if cluster_state:
        store.set_cluster_state(cluster, cluster_state)
    store.set_node_phase(node_ids, node_phase)
    by_name = {s.name: s for s in plan.PLANS[op["kind"]]}
    try:
        if prepare is not None:
            prepare(cluster)
        pillar = orchestration_pillar(op)
        result = run_orchestration(ORCHESTRATION, pillar) if pillar["kubesalt_operation"][
            "stages"] else {"retcode": 0}
        failed = failures(result) if _failed(result) else []
        if _failed(result) and not failed:
            failed = [(None, None, "the orchestration failed without a failing step")]
        for stage in store.operation(op_id)["stages"]:
            if failed:
                break
            if stage["state"] == "skipped" or by_name[stage["name"]].targets != "controller":
                continue
            store.stage_started(op_id, stage["name"])
            try:
                controller_stages[stage["name"]](store, op)
            except Exception as exc:  # noqa: BLE001 - recorded as the stage's failure
                failed = [(stage["name"], None, f"{type(exc).__name__}: {exc}")]
                break
            store.stage_finished(op_id, stage["name"], True)
    except Exception as exc:  # noqa: BLE001 - any failure must end in the record
        failed = [(None, None, f"{type(exc).__name__}: {exc}")]
    op = store.operation(op_id)
    if failed:
        stage, node, comment = _first_failure(op, failed)
        store.stage_finished(op_id, stage, False, error=comment,
                             node_results={node: comment} if node else None)
        store.finish_operation(op_id, False, error=comment, failed_stage=stage,
                               failed_node=node)
        store.set_node_phase(node_ids, "FAILED")
        if cluster_state:
            store.set_cluster_state(cluster, "FAILED")
        return store.operation(op_id)
    store.finish_operation(op_id, True)
    return store.operation(op_id)


def _failed(result):
    if not isinstance(result, dict):
        return True
    return bool(result.get("retcode")) or result.get("success") is False


def _first_failure(op, failed):
    """The earliest stage in plan order that failed; falls back to the running stage."""
    order = {s["name"]: i for i, s in enumerate(op["stages"])}
    named = [f for f in failed if f[0] in order]
    if named:
        return min(named, key=lambda f: order[f[0]])
    running = [s["name"] for s in op["stages"] if s["state"] == "running"]
    stage = running[0] if running else next(
        (s["name"] for s in op["stages"] if s["state"] == "pending"), op["stages"][-1]["name"])
    return stage, failed[0][1], failed[0][2]


CONTROLLER_STOPPED = ("interrupted: the controller stopped during this stage; run the "
                      "same command again (e.g. cluster.provision) to resume here")


def interrupt_running(store, is_alive, kill, reason=CONTROLLER_STOPPED):
    """Stop every operation's executor and record the operation as failed at its running
    stage, so that a rerun resumes there. Called when the controller stops: an executor
    cannot outlive the master it listens to (its event subscription dies with it)."""
    interrupted = []
    for op_id, pid in store.active_operations():
        if pid is not None and is_alive(pid):
            kill(pid)
        store.interrupt_operation(op_id, reason)
        interrupted.append(op_id)
    return interrupted
