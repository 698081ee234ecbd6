"""The hostname conjurer found on the node, kept so that `conjurer -d` puts it back.

conjurer renames the node after its kubesalt identity. Before it does, it records what the
node was called: the static name (/etc/hostname), the running one and /etc/hosts' 127.0.1.1
lines, under /opt/kubesalt (its own state, gone once -d restored it). Only the first rename is
recorded: a rerun finds the node already renamed, and what -d restores is what the machine had
before kubesalt, not kubesalt's own name.
"""

import json
import os

RECORD = "/opt/kubesalt/original-hostname.json"
_LOOPBACK_NAME = "127.0.1.1"


def _path(root, absolute):
    return os.path.join(root, absolute.lstrip("/"))


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def remember(root, running, new_name):
    """Record the node's names before it is renamed to `new_name`; nothing when a record is
    already there or the node already has that name (a rerun)."""
    record_path = _path(root, RECORD)
    static = _read(_path(root, "etc/hostname"))
    if os.path.exists(record_path) or (static or "").strip() == new_name:
        return False
    hosts = (_read(_path(root, "etc/hosts")) or "").splitlines()
    record = {"static": static, "running": running, "set_to": new_name,
              "hosts": [line for line in hosts if line.startswith(_LOOPBACK_NAME)]}
    os.makedirs(os.path.dirname(record_path), exist_ok=True)
    tmp = record_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, record_path)
    return True


class Restored:
    """What restore() did: `name` put back, or `skipped` saying why not (None: no record)."""

    def __init__(self, name=None, skipped=None):
        self.name = name
        self.skipped = skipped


def restore(root, run=None):
    """Put back the names remember() recorded, as identity.set_hostname sets them: the files,
    then `hostname` through `run` for the running name (None: it is left alone). Left alone
    when someone renamed the node since conjurer did: that name is theirs."""
    record_text = _read(_path(root, RECORD))
    if record_text is None:
        return Restored()
    try:
        record = json.loads(record_text)
        set_to, static, running = record["set_to"], record["static"], record["running"]
        loopback = [str(line) for line in record["hosts"]]
    except (ValueError, KeyError, TypeError):
        return Restored(skipped=f"{RECORD} is damaged")
    hostname_file = _path(root, "etc/hostname")
    current = (_read(hostname_file) or "").strip()
    if current != set_to:
        return Restored(skipped=f"the node was renamed to {current or '(none)'} since "
                                f"conjurer named it {set_to}; that name stays")
    if static is None:
        os.remove(hostname_file)
    else:
        with open(hostname_file, "w", encoding="utf-8") as handle:
            handle.write(static)
    hosts_file = _path(root, "etc/hosts")
    hosts = _read(hosts_file)
    if hosts is not None:
        lines = [line for line in hosts.splitlines() if not line.startswith(_LOOPBACK_NAME)]
        with open(hosts_file, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines + loopback) + "\n")
    name = (static or "").strip() or running
    if run is not None and name:
        run(["hostname", name])
    return Restored(name=name)
