"""Hard prechecks: any failure stops conjurer before it changes anything on the node.

Each check is a function of the context (a filesystem root, the controller's coordinates and
the probes) returning one result or a list, named, with a message and how to fix it.
"""

import ipaddress
import json
import os
import re

from . import identity, supported_os
from .checks import fail, ok, run as run_checks
from .probes import SystemProbes

MAX_SKEW_SECONDS = 30
ENROLLMENT_MARKER = "/opt/kubesalt/enrollment.json"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class Context:
    def __init__(self, root="/", controller_address="", publish_port=4505, ret_port=4506,
                 https_port=4507, ntp_server=None, node_id=None, cluster=None,
                 allow_existing_minion=False, probes=None, max_skew=MAX_SKEW_SECONDS,
                 roles=()):
        self.root = root
        self.controller_address = controller_address
        self.publish_port = publish_port
        self.ret_port = ret_port
        self.https_port = https_port
        self.ntp_server = ntp_server or controller_address
        self.node_id = node_id
        self.cluster = cluster
        self.allow_existing_minion = allow_existing_minion
        self.probes = probes or SystemProbes(root)
        self.max_skew = max_skew
        self.roles = tuple(roles)

    def read(self, absolute):
        return self.probes.read(absolute)

    def exists(self, absolute):
        return os.path.exists(os.path.join(self.root, absolute.lstrip("/")))


def os_release(ctx):
    values = {}
    for line in (ctx.read("/etc/os-release") or "").splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"')
    return values


def check_os(ctx):
    release = os_release(ctx)
    name = "%s %s" % (release.get("ID", "unknown"), release.get("VERSION_ID", ""))
    if supported_os.match(release.get("ID"), release.get("VERSION_ID", "")):
        return ok("os", name.strip())
    return fail("os", "%s is not a supported operating system" % name.strip(),
                "use one of: " + ", ".join(supported_os.os_ids()))


def check_dns_port(ctx):
    if ctx.probes.port_in_use(53):
        return fail("dns-port", "port 53 is in use on this node",
                    "stop the local DNS service (e.g. systemd-resolved's stub listener, "
                    "dnsmasq): kubesalt runs consul's DNS on port 53")
    return ok("dns-port", "port 53 is free")


def check_controller(ctx):
    results = []
    for what, port in (("publish", ctx.publish_port), ("return", ctx.ret_port),
                       ("https", ctx.https_port)):
        name = "controller-%s-port" % what
        if ctx.probes.tcp_connect(ctx.controller_address, port):
            results.append(ok(name, "%s:%s reachable" % (ctx.controller_address, port)))
        else:
            results.append(fail(name, "cannot connect to the controller's %s port %s:%s"
                                % (what, ctx.controller_address, port),
                                "allow outbound TCP to %s:%s from this node"
                                % (ctx.controller_address, port)))
    return results


def check_time(ctx):
    try:
        offset = ctx.probes.ntp_offset(ctx.ntp_server)
    except (OSError, ValueError) as exc:
        return [fail("ntp", "NTP server %s does not answer (%s)" % (ctx.ntp_server, exc),
                     "allow UDP 123 to %s, or fix its NTP service" % ctx.ntp_server)]
    results = [ok("ntp", "NTP server %s answers" % ctx.ntp_server)]
    if abs(offset) > ctx.max_skew:
        results.append(fail("time-skew", "this clock is %.1f s off %s (at most %d s allowed)"
                            % (offset, ctx.ntp_server, ctx.max_skew),
                            "synchronise the clock (chrony/systemd-timesyncd) with %s"
                            % ctx.ntp_server))
    else:
        results.append(ok("time-skew", "%.1f s off %s" % (offset, ctx.ntp_server)))
    return results


def check_previous_kubernetes(ctx):
    found = []
    for binary in ("kubelet", "kubeadm"):
        for directory in ("/usr/bin", "/usr/local/bin"):
            if ctx.exists("%s/%s" % (directory, binary)):
                found.append("%s/%s" % (directory, binary))
    if ctx.exists("/etc/kubernetes/kubelet.conf"):
        found.append("/etc/kubernetes/kubelet.conf (an earlier kubeadm join)")
    elif ctx.exists("/etc/kubernetes"):
        found.append("/etc/kubernetes")
    etcd_dir = os.path.join(ctx.root, "var/lib/etcd")
    if os.path.isdir(etcd_dir) and os.listdir(etcd_dir):
        found.append("/var/lib/etcd")
    if ctx.probes.process_running("kubelet"):
        found.append("a running kubelet")
    if found:
        return fail("previous-kubernetes", "an earlier Kubernetes install is on this node: "
                    + ", ".join(found),
                    "run `kubeadm reset -f` and remove these, or use a clean node")
    return ok("previous-kubernetes", "none found")


def valid_hostname(name):
    if not name or len(name) > 253 or "_" in name:
        return False
    return all(_LABEL.match(label) for label in name.lower().rstrip(".").split("."))


def check_hostname(ctx):
    name = ctx.probes.hostname()
    if valid_hostname(name):
        return ok("hostname", name)
    return fail("hostname", "the hostname %r is not a valid RFC 1123 name (letters, digits "
                            "and '-', labels of at most 63, no '_')" % name,
                "set a valid hostname with hostnamectl set-hostname")


def check_firewalls(ctx):
    results = []
    for unit in ("firewalld", "fapolicyd"):
        if ctx.probes.unit_active(unit):
            results.append(fail(unit, "%s is active" % unit,
                                "stop and disable it (systemctl disable --now %s): it blocks "
                                "the ports and binaries Kubernetes needs" % unit))
        else:
            results.append(ok(unit, "not active"))
    return results


def _resolv_options(ctx):
    for line in (ctx.read("/etc/resolv.conf") or "").splitlines():
        fields = line.split()
        if fields and fields[0] == "options":
            yield from fields[1:]


def check_resolv_rotate(ctx):
    if "rotate" in _resolv_options(ctx):
        return fail("resolv-rotate", "/etc/resolv.conf has `options rotate`",
                    "remove `rotate`: consul's DNS must be asked first, every time")
    return ok("resolv-rotate", "no rotate option")


def check_controller_name(ctx):
    try:
        ipaddress.ip_address(ctx.controller_address)
        return ok("controller-name", "controller given as an address")
    except ValueError:
        pass
    if ctx.probes.resolves(ctx.controller_address):
        return ok("controller-name", "%s resolves" % ctx.controller_address)
    return fail("controller-name", "the controller's name %s does not resolve"
                % ctx.controller_address, "fix DNS or /etc/hosts for it")


def check_existing_agent(ctx):
    text = ctx.read(ENROLLMENT_MARKER)
    if text is None:
        return ok("existing-agent", "none")
    try:
        marker = json.loads(text)
    except ValueError:
        marker = {}
    if marker.get("node_id") == ctx.node_id and marker.get("cluster") == ctx.cluster:
        return ok("existing-agent", "this node's own agent (re-run)")
    return fail("existing-agent", "a kubesalt agent is already enrolled here as %s in cluster "
                "%s" % (marker.get("node_id", "?"), marker.get("cluster", "?")),
                "remove it first with conjurer -d")


def check_customer_minion(ctx):
    present = identity.customer_minion_present(ctx.root)
    if present and not ctx.allow_existing_minion:
        return fail("salt-minion", "a salt-minion is already installed on this node",
                    "re-run with -m to install kubesalt's agent beside it (it stays untouched)")
    return ok("salt-minion", "present, -m given" if present else "none")


CHECKS = (check_os, check_dns_port, check_controller, check_time, check_previous_kubernetes,
          check_hostname, check_firewalls, check_resolv_rotate, check_controller_name,
          check_existing_agent, check_customer_minion)


def run(ctx):
    return run_checks(CHECKS, ctx)
