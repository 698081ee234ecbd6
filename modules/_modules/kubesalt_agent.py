"""What the controller may read of kubesalt's own agent on a node: the tail of its log.

Synced to kubesalt's minions with the other modules (saltutil.sync_all when a node is
probed and at the start of every operation). `salt-run node.logs NODE` calls log_tail so an
operator reads why a node failed without ssh. The log is the one this minion writes
(its `log_file` option: /opt/kubesalt/salt/var/log/salt/minion for kubesalt's agent, also
when it runs beside a customer's salt-minion); nothing else on the node is readable this way.
"""

import os

__virtualname__ = "kubesalt_agent"

# Bounds the answer whatever the caller asks: a log line can be long, and the answer travels
# through the master's event bus and job cache.
MAX_LINES = 1000
MAX_BYTES = 64 * 1024
_BLOCK = 8192


def __virtual__():
    return __virtualname__


def tail(path, lines, max_bytes=MAX_BYTES):
    """The last `lines` lines of the file at `path`, reading at most `max_bytes` from its end:
    {"lines": n, "truncated": bool, "log": text}. `truncated` says the file holds more than
    what is returned. Undecodable bytes are replaced, never fatal."""
    lines = max(1, min(int(lines), MAX_LINES))
    max_bytes = max(1, min(int(max_bytes), MAX_BYTES))
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        data = b""
        position = size
        # Read backwards until there is one newline more than the lines wanted (the line
        # before them ends there), the byte budget is spent or the file's start is reached.
        while position > 0 and data.count(b"\n") <= lines and len(data) < max_bytes:
            step = min(_BLOCK, position, max_bytes - len(data))
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
        cut = False
        if position > 0:
            handle.seek(position - 1)
            cut = handle.read(1) != b"\n"  # the first line read starts before `position`
    kept = data.splitlines(keepends=True)
    if cut and len(kept) > 1:
        kept = kept[1:]
    truncated = position > 0
    if len(kept) > lines:
        kept = kept[-lines:]
        truncated = True
    text = b"".join(kept).decode("utf-8", errors="replace")
    return {"lines": len(kept), "truncated": truncated, "log": text}


def log_tail(lines=200, max_bytes=MAX_BYTES):
    """The last `lines` lines (at most MAX_LINES, MAX_BYTES) of this minion's own log, with
    its path; {"path", "error"} when there is none to read."""
    path = __opts__.get("log_file") or ""  # noqa: F821 - injected by the loader
    if not path or path.startswith(("tcp://", "udp://", "file://")) or not os.path.isfile(path):
        return {"path": path, "error": f"this agent writes no log file ({path or 'none set'})"}
    try:
        result = tail(path, lines, max_bytes)
    except OSError as exc:
        return {"path": path, "error": f"cannot read {path}: {exc.strerror}"}
    result["path"] = path
    return result
