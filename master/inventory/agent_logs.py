"""`node.logs`: which nodes' agent logs the controller may read, and what of a node's answer
reaches the operator.

The node reads its own log (modules/_modules/kubesalt_agent.py) and bounds its answer; the
controller bounds it again, because a node's answer is not trusted to keep to the limits it
was asked for.
"""

from kubesalt.master.errors import Refused
from kubesalt.master.inventory import nodes

DEFAULT_LINES = 200
MAX_LINES = 1000
# The most of a log that reaches an answer (and so Salt's job cache and the browser).
MAX_BYTES = 64 * 1024
# A node's agent only runs commands from the controller once its key is accepted.
UNREACHABLE = ("ENROLLED", "DISCOVERED", "REJECTED", "KEY_MISMATCH")


def check_lines(lines):
    if lines > MAX_LINES:
        raise Refused.one("lines", f"{lines} is more than {MAX_LINES}; ask for at most "
                                   f"{MAX_LINES} lines")
    return lines


def check_readable(store, pki_dir, node_id):
    """Refused unless `node_id` is an enrolled node whose agent takes commands."""
    _, shown = nodes.get(store, pki_dir, node_id)
    if shown["status"] in UNREACHABLE:
        raise Refused.one("node", f"{node_id} is {shown['status']}: its agent runs nothing from "
                                  "the controller until its key is accepted; read "
                                  "/opt/kubesalt/salt/var/log/salt/minion on the node")
    return shown


def from_answer(node_id, answer, lines):
    """The operator's view of a node's answer to kubesalt_agent.log_tail (None, or a dict as
    saltcalls.log_answer gives it): {node, path, lines, truncated, log}, cut to `lines` lines
    and MAX_BYTES; Refused when the node did not answer or could not read its log."""
    if answer is None:
        raise Refused.one("node", f"{node_id} did not answer; its agent is not connected (see "
                                  "`connected` in node.show) or is busy")
    if "error" in answer or not isinstance(answer.get("log"), str):
        raise Refused.one("node", f"{node_id} could not read its agent log: "
                                  f"{answer.get('error') or 'it answered no log'}")
    text = answer["log"]
    truncated = bool(answer.get("truncated"))
    kept = text.splitlines(keepends=True)
    if len(kept) > lines:
        kept, truncated = kept[-lines:], True
    text = "".join(kept)
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_BYTES:
        text = encoded[-MAX_BYTES:].decode("utf-8", errors="ignore")
        text = text.split("\n", 1)[-1] if "\n" in text else text
        truncated = True
    return {"node": node_id, "path": str(answer.get("path") or ""),
            "lines": len(text.splitlines()), "truncated": truncated, "log": text}

