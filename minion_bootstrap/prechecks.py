"""Hard prechecks: any failure stops conjurer before it changes anything on the node.

Each check is a function of the context (a filesystem root, the controller's coordinates and
the probes) returning one result or a list, named, with a message and how to fix it.
"""

import http.client
import ipaddress
import json
import os
import re
import time

from . import identity, supported_os
from .checks import fail, ok, run as run_checks, warn
from .probes import SystemProbes, describe_network_error
from .proxy_connect import ProxyError

MAX_SKEW_SECONDS = 30
ENROLLMENT_MARKER = "/opt/kubesalt/enrollment.json"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class Context:
    def __init__(self, root="/", controller_address="", publish_port=4505, ret_port=4506,
                 https_port=4507, ntp_server=None, node_id=None, cluster=None,
                 allow_existing_minion=False, probes=None, max_skew=MAX_SKEW_SECONDS,
                 roles=(), ca_cert_pem=None, cluster_os=None, proxy=None,
                 gateway_port=None, connect_with=None):
        self.root = root
        self.controller_address = controller_address
        self.publish_port = publish_port
        self.ret_port = ret_port
        self.https_port = https_port
        # None: no NTP server was configured, so the time check asks the controller's clock.
        self.ntp_server = ntp_server or None
        self.ca_cert_pem = ca_cert_pem
        self.node_id = node_id
        self.cluster = cluster
        self.allow_existing_minion = allow_existing_minion
        self.probes = probes or SystemProbes(root)
        self.max_skew = max_skew
        self.roles = tuple(roles)
        # The cluster's `os` as the controller answered conjurer's check; None when it did
        # not answer (then only that the node's OS is a supported one is checked).
        self.cluster_os = cluster_os
        # The proxy_connect.Proxy the controller is reached through; None: directly.
        self.proxy = proxy
        # Set when this node reaches the controller through its agent gateway (behind a
        # proxy, or -gateway): then `connect_with` opens HTTPS connections through it.
        self.gateway_port = gateway_port
        self.connect_with = connect_with

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
    """The node's OS must be a supported one, and the one its cluster was created for: the
    states install that OS's packages and the version matrix was checked against it."""
    release = os_release(ctx)
    name = ("%s %s" % (release.get("ID", "unknown"), release.get("VERSION_ID", ""))).strip()
    node_os = supported_os.cluster_os(release.get("ID"), release.get("VERSION_ID", ""))
    if node_os is None:
        return fail("os", "%s is not a supported operating system" % name,
                    "use one of: " + ", ".join(supported_os.os_ids()))
    if ctx.cluster_os is None:
        return ok("os", name)
    if node_os != ctx.cluster_os:
        return fail("os", "this node runs %s (%s) but cluster %s is for %s"
                    % (name, node_os, ctx.cluster, ctx.cluster_os),
                    "enroll a node that runs %s in %s, or create a cluster for %s (salt-run "
                    "cluster.create NAME os=%s) and run conjurer with that cluster's "
                    "installer" % (ctx.cluster_os, ctx.cluster, node_os, node_os))
    return ok("os", "%s, as cluster %s wants" % (name, ctx.cluster))


def check_dns_port(ctx):
    if ctx.probes.port_in_use(53):
        return fail("dns-port", "port 53 is in use on this node",
                    "stop the local DNS service (e.g. systemd-resolved's stub listener, "
                    "dnsmasq): kubesalt runs consul's DNS on port 53")
    return ok("dns-port", "port 53 is free")


def _check_gateway(ctx):
    """Behind a proxy or one open port, the agent gateway carries everything: it must answer
    with the controller's certificate."""
    name = "controller-gateway"
    where = "%s:%s" % (ctx.controller_address, ctx.gateway_port)
    via = " through the proxy %s" % ctx.proxy.shown if ctx.proxy else ""
    if not ctx.gateway_port:
        why = ("this node reaches it through the proxy %s" % ctx.proxy.shown if ctx.proxy
               else "-gateway was given")
        return fail(name, "the controller serves no agent gateway, and %s: the agent's Salt "
                          "connection crosses a proxy or a single open port only through it"
                    % why,
                    "on the controller run kubesalt-controller init --gateway-port 443 (then "
                    "restart it) and download new credentials with salt-run cluster.installer "
                    "%s; or, where this node may reach the controller's ports directly, run "
                    "conjurer with -proxy direct" % ctx.cluster)
    try:
        ctx.connect_with(ctx.controller_address, ctx.https_port, 10.0).close()
    except ProxyError as exc:
        return fail(name, "cannot reach the controller's agent gateway %s%s: %s"
                    % (where, via, exc.message), exc.fix)
    except (OSError, ValueError) as exc:
        message, fix = describe_network_error(exc, ctx.controller_address, ctx.gateway_port)
        return fail(name, "cannot reach the controller's agent gateway%s: %s" % (via, message),
                    fix)
    return ok(name, "%s answers%s" % (where, via))


def check_controller(ctx):
    if ctx.connect_with is not None and ctx.gateway_port is not None:
        return [_check_gateway(ctx)]
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


def _duration(seconds):
    seconds = abs(seconds)
    if seconds < 120:
        return "%.1f s" % seconds
    if seconds < 7200:
        return "%.0f s (%.1f min)" % (seconds, seconds / 60)
    if seconds < 2 * 86400:
        return "%.0f s (%.1f h)" % (seconds, seconds / 3600)
    return "%.0f s (%.1f days)" % (seconds, seconds / 86400)


def _utc_text(moment):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment))


def _skew_result(ctx, offset, uncertainty, reference, what, fix):
    """`offset` is the reference clock minus this node's. A reading only good to
    `uncertainty` refuses only a clock that is off by more than the limit even at the
    favourable end of it."""
    direction = "behind" if offset > 0 else "ahead of"
    if abs(offset) < 0.05:
        direction = "off"
    if abs(offset) - uncertainty > ctx.max_skew:
        return fail("time-skew", "this node's clock is %s %s %s; at most %d s is allowed"
                    % (_duration(offset), direction, what, ctx.max_skew), fix)
    return ok("time-skew", "%s %s %s" % (_duration(offset), direction, what))


def _set_clock_fix(reference, sync_hint):
    return ("%s; then step the clock now: chronyc makestep (chrony) or restart "
            "systemd-timesyncd, or set it by hand: date -u -s '%s' (the reference's UTC time "
            "when checked)" % (sync_hint, _utc_text(reference)))


def _against_controller(ctx):
    where = "%s:%s" % (ctx.controller_address, ctx.https_port)
    try:
        reading = ctx.probes.controller_clock(ctx.controller_address, ctx.https_port,
                                              ctx.ca_cert_pem, ctx.connect_with)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        message, fix = describe_network_error(exc, ctx.controller_address, ctx.https_port)
        return fail("time-skew", "cannot read the controller's clock: " + message, fix)
    what = ("the controller's clock (the Date of its HTTPS answer from %s, good to %.1f s)"
            % (where, reading.uncertainty))
    fix = _set_clock_fix(reading.reference,
                         "keep this node's clock synchronised: timedatectl set-ntp true "
                         "(systemd-timesyncd or chrony with the site's NTP servers)")
    return _skew_result(ctx, reading.offset, reading.uncertainty, reading.reference, what, fix)


def check_time(ctx):
    """With an NTP server configured (kubesalt-controller init --ntp-server) the node must reach
    it and agree with it. Without one, the node must agree with the controller's clock, which is
    what enrollment is checked against anyway; it is read over the credentials' pinned TLS, so
    the network cannot fake it.

    Credentials issued before NTP became optional name the controller's own address as the NTP
    server. When that answers it is checked as configured; when it does not, the controller
    most likely never served NTP, so its clock is compared instead of refusing the node."""
    if not ctx.ntp_server:
        return [_against_controller(ctx)]
    server = ctx.ntp_server
    try:
        offset = ctx.probes.ntp_offset(server)
    except (OSError, ValueError) as exc:
        if server == ctx.controller_address:
            return [warn("ntp", "NTP server %s (the controller's own address, named by "
                                "credentials from an earlier kubesalt) does not answer (%s); "
                                "compared with the controller's clock instead" % (server, exc),
                         "nothing to do; new credentials (cluster.installer) name an NTP "
                         "server only when the controller has one (init --ntp-server)"),
                    _against_controller(ctx)]
        return [fail("ntp", "NTP server %s does not answer (%s)" % (server, exc),
                     "allow UDP 123 from this node to %s, or fix its NTP service; the "
                     "controller was initialised with --ntp-server %s" % (server, server))]
    reference = time.time() + offset
    fix = _set_clock_fix(reference, "synchronise this node with %s: timedatectl set-ntp true "
                                    "with NTP=%s in /etc/systemd/timesyncd.conf, or `server "
                                    "%s iburst` in chrony's configuration"
                         % (server, server, server))
    return [ok("ntp", "NTP server %s answers" % server),
            _skew_result(ctx, offset, 0.0, reference, "NTP server %s" % server, fix)]


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
