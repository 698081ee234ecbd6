"""conjurer: turns this machine into a kubesalt node of one cluster.

    sudo ./conjurer -edge-name=NAME -passphrase-file=FILE -creds-file=FILE [-t] [-m] [-d]
    sudo ./conjurer ... -precheck      run the hard prechecks only
    sudo ./conjurer ... -preflight     run the soft checks and print them as a table
    sudo ./conjurer ... -proxy URL     reach the controller through this HTTP proxy
    sudo ./conjurer ... -gateway       reach it through its agent gateway port only

Flags take one dash or two. -t also runs the soft preflight checks during an install and prints
their table (they never block) and how long each install step took; -m installs kubesalt's
agent beside a customer's own salt-minion; -d removes kubesalt's agent (with -m: only ours, the
customer's stays) and puts back the hostname conjurer changed.

Proxy. When the cluster was created with a proxy (cluster.create proxy=...), the credentials
carry it and conjurer reaches the controller through it (HTTP CONNECT; the https URL, else the
http one; hosts in its no_proxy are reached directly). -proxy http://[user:password@]host:port
(or https://...) uses another proxy for this node; -proxy direct uses none. The controller's
TLS is verified against the controller CA in the credentials whatever the proxy does, and the
proxy's password is never printed.

Behind a proxy, or with -gateway where the site allows one outbound port, everything goes to
the controller's agent gateway (kubesalt-controller init --gateway-port, 443 usually): these
requests, and then the agent's own connection, which kubesalt-tunnel.service carries from
loopback ports beside the minion (Salt's ZeroMQ cannot cross a proxy by itself).

Before it changes anything, conjurer asks the controller whether this node would enroll (its
credentials, and its node id: no other minion's key under it) and learns the cluster's OS,
which the prechecks compare with the node's.

Every failure is one line that says what to do about it: a failed exchange with the controller
names the address and port it tried and what to check (DNS, firewall, --https-port, TLS), a
refusal names the credentials to re-issue, a missing node-agent bundle the command that builds
it.
"""

import argparse
import hashlib
import http.client
import json
import os
import platform
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from . import agent as agent_mod
from . import facts as facts_mod
from . import credentials, identity, original_hostname, prechecks, preflight, probes, \
    proxy_connect, tunnel
from .checks import fail as failed_check, format_failures, format_table

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PRECHECK = 3
EXIT_INSTALL = 4
EXIT_ENROLL = 5

ROOT = "/"
MANIFEST_PATH = "/artifacts/agent/manifest.json"
BUNDLE_DIR = "/artifacts/agent/"
# Controller refusals that no change on the node fixes, only other credentials.
_CREDENTIAL_REASONS = ("expired", "revoked", "wrong-cluster", "bad-signature", "untrusted")


def parser():
    p = argparse.ArgumentParser(prog="conjurer", allow_abbrev=False,
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-edge-name", "--edge-name", dest="edge_name",
                   help="the cluster this node joins (as named on the controller)")
    p.add_argument("-passphrase-file", "--passphrase-file", dest="passphrase_file",
                   help="the <cluster>-passphrase.txt downloaded with the credentials")
    p.add_argument("-creds-file", "--creds-file", dest="creds_file",
                   help="the <cluster>.pem downloaded with cluster.installer")
    p.add_argument("-agent-bundle", "--agent-bundle", dest="agent_bundle",
                   help="install the node-agent software from this local bundle (its "
                        "sha256 must be in a manifest.json beside it) instead of the controller")
    p.add_argument("-t", "--t", dest="preflight_report", action="store_true",
                   help="also run the soft preflight checks and print their table")
    p.add_argument("-m", "--m", dest="multi_minion", action="store_true",
                   help="install beside (or with -d remove from beside) a customer salt-minion")
    p.add_argument("-d", "--d", dest="delete", action="store_true",
                   help="remove kubesalt's node agent and restore the hostname")
    p.add_argument("-proxy", "--proxy", dest="proxy", metavar="URL",
                   help="reach the controller through this HTTP proxy "
                        "(http://[user:password@]host:port) instead of the cluster's, or "
                        "`direct` for none")
    p.add_argument("-gateway", "--gateway", dest="gateway", action="store_true",
                   help="reach the controller only through its agent gateway port (sites "
                        "that allow one outbound port); implied behind a proxy")
    p.add_argument("-precheck", "--precheck", dest="precheck", action="store_true",
                   help="run the hard prechecks only")
    p.add_argument("-preflight", "--preflight", dest="preflight", action="store_true",
                   help="run the soft preflight checks only, as a table")
    return p


def say(line):
    print("[+] " + line, flush=True)


def fail(line, code):
    print("[-] " + line, file=sys.stderr, flush=True)
    return code


def _read(path, what, flag):
    if not path:
        raise UsageError(f"{flag} is required: the {what}")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror}") from None


class UsageError(Exception):
    pass


def load_credentials(args):
    passphrase = _read(args.passphrase_file, "passphrase file", "-passphrase-file").strip()
    text = _read(args.creds_file, "credentials file", "-creds-file")
    if not args.edge_name:
        raise UsageError("-edge-name is required: the cluster this node joins")
    creds = credentials.open_credentials(text, passphrase, args.edge_name)
    try:
        creds.route = proxy_connect.choose(creds.proxy, getattr(args, "proxy", None),
                                           creds.controller["address"])
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return creds


class ControllerError(Exception):
    """A failed exchange with the controller, in one line that says what to do about it."""


def _where(creds):
    return creds.controller["address"], int(creds.controller["https_port"])


def _url(creds, path):
    host, port = _where(creds)
    return "https://%s:%d%s" % ("[%s]" % host if ":" in host else host, port, path)


def _network_error(creds, exc, timeout):
    host, port = _where(creds)
    message, fix = probes.describe_network_error(exc, host, port, timeout)
    return ControllerError("%s; %s" % (message, fix))


def _credentials_refused(creds, detail):
    return ControllerError(
        f"the controller refused these credentials ({detail}): they were revoked or replaced, "
        "have expired, or belong to another cluster or controller; download new ones on the "
        f"controller with salt-run cluster.installer {creds.cluster} dest=DIR and copy them "
        "to this node")


def _error_text(raw, fallback):
    try:
        answer = json.loads(raw)
    except ValueError:
        return fallback
    return str(answer.get("error") or fallback) if isinstance(answer, dict) else fallback


def _http_error(creds, exc, path):
    host, port = _where(creds)
    try:
        error = _error_text(exc.read(), exc.reason)
    except (OSError, http.client.HTTPException):
        error = exc.reason
    if exc.code in (401, 403):
        return _credentials_refused(creds, f"HTTP {exc.code} for {path}: {error}")
    if exc.code >= 500:
        return ControllerError(f"the controller at {host}:{port} failed to answer {path} "
                               f"(HTTP {exc.code}: {error}); its salt-master log has the "
                               "details")
    return ControllerError(f"the controller at {host}:{port} answered {path} with HTTP "
                           f"{exc.code} ({error})")


def _opener(creds):
    return proxy_connect.opener(creds.ssl_context(), getattr(creds, "connect_with", None))


def choose_path(args, creds, node):
    """How conjurer, and after it the agent, reach the controller: directly, or through the
    agent gateway (behind a proxy, which Salt cannot cross, or with -gateway). Sets
    creds.gateway_port (None: direct; 0: wanted but the controller serves none) and
    creds.connect_with (how HTTPS connections to the controller are opened)."""
    creds.gateway_port, creds.connect_with = None, proxy_connect.connector(creds.route)
    if creds.route is None and not getattr(args, "gateway", False):
        return
    creds.gateway_port = int(creds.controller.get("gateway_port") or 0)
    if creds.gateway_port:
        creds.connect_with = tunnel.https_connector(
            creds.controller["address"], creds.gateway_port, node.name, creds.ca_cert_pem,
            creds.route)
    else:
        creds.connect_with = _no_gateway


def _no_gateway(host, port, timeout):
    raise proxy_connect.ProxyError(
        "the controller serves no agent gateway, which this node needs",
        "on the controller run kubesalt-controller init --gateway-port 443 and download new "
        "credentials with salt-run cluster.installer")


def _https_get(creds, path, timeout=60, not_found=None):
    """The body at `path`; any failure is a ControllerError, a 404 says `not_found`."""
    try:
        with _opener(creds).open(_url(creds, path), timeout=timeout) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and not_found:
            raise ControllerError(not_found) from None
        raise _http_error(creds, exc, path) from None
    except (OSError, http.client.HTTPException) as exc:  # URLError, socket and TLS errors
        raise _network_error(creds, exc, timeout) from None


def _https_post(creds, path, payload, timeout=60):
    """(status, answer): the controller's refusals are answers, not errors; failing to
    get an answer at all is a ControllerError."""
    request = urllib.request.Request(_url(creds, path),  # noqa: S310 - https only
                                     data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with _opener(creds).open(request, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        try:
            status, raw = exc.code, exc.read()
        except (OSError, http.client.HTTPException):
            status, raw = exc.code, b""
    except (OSError, http.client.HTTPException) as exc:
        raise _network_error(creds, exc, timeout) from None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        if status == 200:
            host, port = _where(creds)
            raise ControllerError(f"the answer of {host}:{port} to {path} is not the "
                                  "controller's (not JSON); check that the address and "
                                  "--https-port in the credentials are the controller's")
        answer = {"error": f"HTTP {status}"}
    return status, answer


def _refusal(creds, status, answer):
    """The controller's refusal as an EnrollError, with the fix when it does not name one."""
    error = str(answer.get("error") or f"the controller answered HTTP {status}")
    reason = answer.get("reason")
    if "cluster.installer" in error:
        return EnrollError(error, reason)
    if reason in _CREDENTIAL_REASONS or (status in (401, 403) and not reason):
        return EnrollError(f"{error}; download new credentials on the controller with salt-run "
                           f"cluster.installer {creds.cluster} dest=DIR and copy them to this "
                           "node", reason)
    return EnrollError(error, reason)


def _python_of(tag):
    """cp311 -> 3.11"""
    return f"{tag[2]}.{tag[3:]}" if tag.startswith("cp") and len(tag) > 3 else tag


def _choose_bundle(manifest, source):
    version = "%d.%d" % sys.version_info[:2]
    tag, arch = "cp%d%d" % sys.version_info[:2], platform.machine()
    bundles = manifest.get("bundles", []) if isinstance(manifest, dict) else []
    bundles = [b for b in bundles if isinstance(b, dict)]
    for bundle in bundles:
        if bundle.get("python") == tag and bundle.get("arch") == arch and bundle.get("file") \
                and bundle.get("sha256"):
            return bundle
    have = ", ".join(f"Python {_python_of(str(b.get('python')))} on {b.get('arch')}"
                     for b in bundles)
    if bundles and not any(b.get("arch") == arch for b in bundles):
        have += f" (none for {arch})"
    hint = ""
    others = sorted({_python_of(str(b.get("python"))) for b in bundles
                     if b.get("arch") == arch and b.get("python") != tag})
    if others:
        hint = (", or run conjurer with a Python it has a bundle for: "
                + " or ".join(f"python{v} ./conjurer ..." for v in others))
    raise agent_mod.AgentError(
        f"{source} has no node-agent bundle for this node: Python {version} ({tag}) on "
        f"{arch}; it has: {have or 'none'}. Build one on the controller with "
        f"`kubesalt-controller agent-bundle --python {version}`{hint}")


def fetch_bundle(creds, args, workdir):
    """Returns (path, sha256) of the node-agent bundle to install."""
    if args.agent_bundle:
        directory = os.path.dirname(os.path.abspath(args.agent_bundle))
        manifest_file = os.path.join(directory, "manifest.json")
        try:
            with open(manifest_file, encoding="utf-8") as handle:
                manifest = json.load(handle)
        except (OSError, ValueError) as exc:
            raise agent_mod.AgentError(
                f"cannot read {manifest_file} ({getattr(exc, 'strerror', None) or exc}): "
                "-agent-bundle needs the controller's manifest.json (from its "
                "artifacts/agent/ directory) beside the bundle") from None
        bundle = _choose_bundle(manifest, manifest_file)
        if bundle["file"] != os.path.basename(args.agent_bundle):
            raise agent_mod.AgentError(f"{args.agent_bundle} is not the bundle for this node "
                                       f"({bundle['file']})")
        return args.agent_bundle, bundle["sha256"]
    host, port = _where(creds)
    raw = _https_get(creds, MANIFEST_PATH, not_found=(
        f"the controller at {host}:{port} has no node-agent software yet ({MANIFEST_PATH} "
        "is missing): run `kubesalt-controller agent-bundle` on the controller (or "
        "`kubesalt-controller start`, which builds it), then run conjurer again"))
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise ControllerError(f"the controller's {MANIFEST_PATH} is not JSON; rebuild it on the "
                              "controller with `kubesalt-controller agent-bundle`") from None
    bundle = _choose_bundle(manifest, f"the controller at {host}:{port}")
    path = os.path.join(workdir, os.path.basename(bundle["file"]))
    data = _https_get(creds, BUNDLE_DIR + urllib.parse.quote(bundle["file"]), timeout=300,
                      not_found=(f"the controller's manifest lists {bundle['file']} but the "
                                 "controller does not have that file; rebuild it on the "
                                 "controller with `kubesalt-controller agent-bundle --python "
                                 "%d.%d`" % sys.version_info[:2]))
    if hashlib.sha256(data).hexdigest() != bundle["sha256"]:
        raise agent_mod.AgentError("the downloaded node-agent bundle does not match its "
                                   "checksum; try again, or check the controller's artifacts")
    with open(path, "wb") as handle:
        handle.write(data)
    return path, bundle["sha256"]


def enroll(creds, node_id, minion_pub, facts=None):
    request, signature = creds.enrollment_request(node_id, minion_pub, time.time(), facts)
    payload = {"request": request, "signature": signature,
               "installer_cert": creds.installer_cert_pem, "minion_pub": minion_pub}
    status, answer = _https_post(creds, "/v1/enroll", payload)
    if status != 200:
        raise _refusal(creds, status, answer)
    return answer


def check_installer(creds, node_id, held_pub=None):
    """Ask the controller whether this node may enroll: these credentials (not revoked,
    replaced or expired by its clock) and `node_id` (no other key under it than `held_pub`,
    the one an earlier run made). Its answer names the cluster's `os`. Raises EnrollError
    with the controller's reason if not."""
    request, signature = creds.check_request(node_id, time.time(), held_pub)
    payload = {"request": request, "signature": signature,
               "installer_cert": creds.installer_cert_pem}
    if held_pub:
        payload["minion_pub"] = held_pub
    status, answer = _https_post(creds, "/v1/installer/check", payload)
    if status != 200:
        raise _refusal(creds, status, answer)
    return answer


class EnrollError(Exception):
    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason


# Refusals of the node itself (its id), not of the credentials it holds.
_NODE_REASONS = ("id-in-use", "rejected", "conflict")


def ask_controller(creds, node, agent):
    """(answer, None) when the controller would enroll this node, else (None, what stands in
    the way, in one line). Asked before the prechecks, which need the cluster's `os` from the
    answer, and before anything on the node changes."""
    try:
        return check_installer(creds, node.name, agent.held_public_key()), None
    except EnrollError as exc:
        whom = "this node" if exc.reason in _NODE_REASONS else "these credentials"
        return None, f"the controller refused {whom}: {exc}"
    except ControllerError as exc:
        return None, f"cannot ask the controller whether these credentials may enroll: {exc}"


def check_context(args, creds, node, cluster_os=None):
    return prechecks.Context(
        root=ROOT,
        controller_address=creds.controller["address"],
        publish_port=int(creds.controller["publish_port"]),
        ret_port=int(creds.controller["ret_port"]),
        https_port=int(creds.controller["https_port"]),
        # Absent (or null) unless the controller was initialised with --ntp-server.
        ntp_server=creds.controller.get("ntp_server") or None,
        node_id=node.name,
        cluster=creds.cluster,
        allow_existing_minion=args.multi_minion,
        ca_cert_pem=creds.ca_cert_pem,
        cluster_os=cluster_os,
        proxy=getattr(creds, "route", None),
        gateway_port=getattr(creds, "gateway_port", None),
        connect_with=getattr(creds, "connect_with", None),
    )


def _tunnel_config(creds, node):
    """The node tunnel's settings when the agent goes through the gateway, else None."""
    if not getattr(creds, "gateway_port", None):
        return None
    return tunnel.tunnel_config(creds.controller, node.name, creds.ca_cert_pem,
                                agent_mod.TUNNEL_PORTS, creds.route)


def remove(args, agent):
    customer = identity.customer_minion_present(ROOT)
    if customer and not args.multi_minion:
        return fail("a customer salt-minion is on this node; use -m -d to remove only "
                    "kubesalt's agent and leave it untouched", EXIT_USAGE)
    say("Removing kubesalt node agent")
    try:
        restored = original_hostname.restore(ROOT, run=agent.run)
    except (OSError, agent_mod.AgentError) as exc:
        restored = original_hostname.Restored(skipped=f"it could not be restored ({exc}); set "
                                                      "it by hand: hostnamectl set-hostname "
                                                      "NAME")
    if restored.name:
        say(f"Restored hostname {restored.name}")
    elif restored.skipped:
        say(f"Hostname left as it is: {restored.skipped}")
    removed = agent.remove()
    for path in removed:
        say(f"Removed {path}")
    say("Successfully removed kubesalt node agent" if removed
        else "kubesalt node agent was not installed")
    return EXIT_OK


class Steps:
    """Prints each install step as it starts; with `timed` (-t) also how long it took."""

    def __init__(self, timed):
        self.timed = timed
        self._current = None

    def start(self, number, text):
        self.done()
        say(f"Step {number}. {text}")
        self._current = (number, time.monotonic())

    def done(self):
        if self._current is not None and self.timed:
            number, started = self._current
            say(f"Step {number} took {time.monotonic() - started:.1f} s")
        self._current = None


def install(args, creds, node, agent):
    say("Initiating edge node install")
    answer, refused = ask_controller(creds, node, agent)
    ctx = check_context(args, creds, node, (answer or {}).get("os"))
    results = prechecks.run(ctx)
    failures = [r for r in results if r.failed]
    if failures:
        print(format_failures(results), file=sys.stderr, flush=True)
        return fail(f"{len(failures)} precheck(s) failed; nothing on this node was changed",
                    EXIT_PRECHECK)
    if refused:
        return fail(f"{refused}; nothing on this node was changed", EXIT_ENROLL)
    if args.preflight_report:
        print(format_table(preflight.run(ctx)), flush=True)
    say("Provisioning node")
    steps = Steps(args.preflight_report)
    with tempfile.TemporaryDirectory(prefix="conjurer-") as workdir:
        steps.start(1, "Installing node-agent")
        try:
            bundle, sha256 = fetch_bundle(creds, args, workdir)
        except (ControllerError, agent_mod.AgentError) as exc:
            return fail(f"install failed: {exc}; nothing on this node was changed",
                        EXIT_INSTALL)
        agent.install_software(bundle, sha256)
    steps.start(2, f"Setting hostname to {node.hostname}")
    original_hostname.remember(ROOT, socket.gethostname(), node.hostname)
    identity.set_hostname(node.hostname, root=ROOT, run=agent.run)
    steps.start(3, "Installing credentials on node")
    minion_pub = agent.generate_keys()
    agent.write_ca(creds.ca_cert_pem)
    answer = enroll(creds, node.name, minion_pub, facts_mod.gather(ctx))
    agent.write_enrollment(node.name, creds.cluster, creds.controller, creds.serial)
    steps.start(4, "Configuring node-agent")
    agent.configure(node.name, creds.cluster, creds.controller, _tunnel_config(creds, node))
    steps.start(5, "Starting node-agent")
    agent.start()
    steps.done()
    say(f"Successfully provisioned node {node.name} ({answer.get('status', 'DISCOVERED')})")
    return EXIT_OK


def main(argv=None):
    args = parser().parse_args(argv)
    if os.geteuid() != 0:
        return fail("conjurer must run as root (sudo ./conjurer ...)", EXIT_USAGE)
    agent = agent_mod.Agent(python=sys.executable)
    if args.delete:
        return remove(args, agent)
    try:
        creds = load_credentials(args)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except credentials.CredentialsError as exc:
        return fail(str(exc), exc.exit_code)
    node = identity.node_identity(ROOT, creds.cluster, creds.controller["address"],
                                  int(creds.controller["ret_port"]))
    choose_path(args, creds, node)
    if creds.route is not None:
        say(f"Reaching the controller through the proxy {creds.route.shown}")
    if creds.gateway_port:
        say(f"Reaching the controller through its agent gateway, port {creds.gateway_port}")
    if args.preflight:
        print(format_table(preflight.run(check_context(args, creds, node))), flush=True)
        return EXIT_OK
    if args.precheck:
        answer, refused = ask_controller(creds, node, agent)
        results = prechecks.run(check_context(args, creds, node, (answer or {}).get("os")))
        if refused:
            results.append(failed_check("enrollment", refused))
        print(format_table(results), flush=True)
        return EXIT_PRECHECK if any(r.failed for r in results) else EXIT_OK
    try:
        return install(args, creds, node, agent)
    except EnrollError as exc:
        return fail(f"the controller refused this node: {exc}", EXIT_ENROLL)
    except (ControllerError, agent_mod.AgentError, OSError, ssl.SSLError) as exc:
        return fail(f"install failed: {exc}", EXIT_INSTALL)


if __name__ == "__main__":
    sys.exit(main())
