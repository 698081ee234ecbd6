"""Who this node is to kubesalt: node-<id>-<ip-with-dashes>-<cluster>.

<id> is derived from /etc/machine-id, so running conjurer again on the same machine yields the
same name (and the same Salt minion id); the address is the one this node uses to reach the
controller, which is the address the controller will see.
"""

import collections
import hashlib
import os
import socket

NodeIdentity = collections.namedtuple("NodeIdentity", "short_id ip name hostname")


def machine_id(root="/"):
    for path in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            with open(os.path.join(root, path), encoding="ascii") as handle:
                value = handle.read().strip()
        except OSError:
            continue
        if value:
            return value
    raise RuntimeError("this machine has no /etc/machine-id; run systemd-machine-id-setup")


def route_address(controller, port):
    """The local address the kernel picks to reach the controller (no packet is sent)."""
    family = socket.AF_INET6 if ":" in controller else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((controller, port))
        return probe.getsockname()[0]


def node_identity(root, cluster, controller, port):
    short_id = hashlib.sha256(machine_id(root).encode()).hexdigest()[:8]
    ip = route_address(controller, port)
    name = "node-{}-{}-{}".format(short_id, ip.replace(".", "-").replace(":", "-"), cluster)
    return NodeIdentity(short_id, ip, name, name)


def customer_minion_present(root="/"):
    """A salt-minion that is not kubesalt's: its config, its unit, or its install."""
    candidates = ("etc/salt/minion", "etc/salt/minion.d", "etc/systemd/system/salt-minion.service",
                  "lib/systemd/system/salt-minion.service",
                  "usr/lib/systemd/system/salt-minion.service", "opt/saltstack/salt")
    return any(os.path.exists(os.path.join(root, c)) for c in candidates)


def set_hostname(name, root="/", run=None):
    """Set the static and the running hostname, and keep /etc/hosts resolving it."""
    hostname_file = os.path.join(root, "etc/hostname")
    with open(hostname_file, "w", encoding="ascii") as handle:
        handle.write(name + "\n")
    hosts_file = os.path.join(root, "etc/hosts")
    try:
        with open(hosts_file, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        lines = ["127.0.0.1\tlocalhost"]
    lines = [line for line in lines if not line.startswith("127.0.1.1")]
    lines.append("127.0.1.1\t" + name)
    with open(hosts_file, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    if root == "/" and run is not None:
        run(["hostname", name])
