"""What an operator reads by default: an operation as a stage table, a cluster's status as
its state and health over that table, progress as one line. Plain text; `--out=json` has the data.
Used by kubesalt's outputter (master/output/kubesalt_out.py); None for anything else."""

import time

STAGE_WIDTH = 20


def render(data):
    """The text for `data` when it is one of kubesalt's operation shapes, else None."""
    if not isinstance(data, dict):
        return None
    if data.get("suffix") == "progress" and isinstance(data.get("event"), dict):
        return str(data["event"].get("message", ""))
    if data.get("suffix") is not None:
        return None
    if _is_operation(data):
        return operation_table(data)
    if "cluster" in data and "state" in data and ("operation" in data or "operations" in data):
        return cluster_status(data)
    return None


def _is_operation(data):
    return isinstance(data.get("stages"), list) and "operation" in data and "kind" in data \
        and all(isinstance(s, dict) and "stage" in s for s in data["stages"])


def cluster_status(data):
    lines = [f"cluster {data['cluster']}: {data['state']}"]
    if data.get("health"):
        lines.extend(health_lines(data["health"]))
    ops = data.get("operations")
    if ops is None:
        ops = [data["operation"]] if data.get("operation") else []
    if not ops:
        lines.append("no operation has run on this cluster yet")
    for op in ops[:-1]:
        lines.append(_headline(op))
    if ops:
        lines.append(operation_table(ops[-1]))
    return "\n".join(lines)


def health_lines(health):
    """The cluster's health, one line, and one more per node with a problem."""
    since = f" since {_clock(health['since'])}" if health.get("since") else ""
    lines = [f"health: {health['state']}{since}"]
    for problem in health.get("problems") or []:
        since = f" since {_clock(problem['since'])}" if problem.get("since") else ""
        lines.append(f"  {problem['node']}: {problem['state']}{since}: {problem['reason']}")
    return lines


def _clock(timestamp):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _headline(op):
    took = f", {op['duration_s']:.1f} s" if op.get("duration_s") is not None else ""
    where = ""
    if op.get("failed_stage"):
        where = f" at {op['failed_stage']}" + (f" on {op['failed_node']}"
                                               if op.get("failed_node") else "")
    return f"operation {op['operation']} ({op['kind']}): {op['state']}{where}{took}" + \
        (f", started {op['started']}" if op.get("started") else "")


def operation_table(op):
    lines = [_headline(op),
             f"  {'STAGE':<{STAGE_WIDTH}} {'STATE':<9} {'TIME':>8}  NODES"]
    for stage in op["stages"]:
        took = "" if stage.get("duration_s") is None or stage["state"] == "skipped" \
            else f"{stage['duration_s']:.1f}s"
        count = len(stage.get("nodes") or [])
        nodes = f"{count} node{'s' if count != 1 else ''}" if count else "controller"
        if stage["state"] == "skipped":
            nodes = stage.get("error") or "skipped"
        lines.append(f"  {stage['stage']:<{STAGE_WIDTH}} {stage['state']:<9} {took:>8}  {nodes}")
        for node, result in sorted((stage.get("per_node") or {}).items()):
            if result.get("state") in ("failed", "cancelled"):
                lines.append(f"    {node}: {result['state']}: {result.get('error') or ''}")
        if stage["state"] in ("failed", "cancelled") and not any(
                r.get("state") in ("failed", "cancelled")
                for r in (stage.get("per_node") or {}).values()) and stage.get("error"):
            lines.append(f"    {stage['error']}")
    if op.get("error") and op.get("state") not in ("failed", "cancelled"):
        lines.append(f"  {op['error']}")
    return "\n".join(lines)
