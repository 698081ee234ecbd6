"""conjurer: turns this machine into a kubesalt node of one cluster.

    sudo ./conjurer -edge-name=NAME -passphrase-file=FILE -creds-file=FILE [-t] [-m] [-d]
    sudo ./conjurer ... -precheck      run the hard prechecks only
    sudo ./conjurer ... -preflight     run the soft checks and print them as a table

Flags take one dash or two. -t also runs the soft preflight checks during an install and prints
their table (they never block); -m installs kubesalt's agent beside a customer's own
salt-minion; -d removes kubesalt's agent (with -m: only ours, the customer's stays).
"""

import argparse
import hashlib
import json
import os
import platform
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request

from . import agent as agent_mod
from . import credentials, identity, prechecks, preflight
from .checks import format_failures, format_table

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PRECHECK = 3
EXIT_INSTALL = 4
EXIT_ENROLL = 5
EXIT_REMOVE = 6

ROOT = "/"


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
                   help="remove kubesalt's node agent")
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
    return credentials.open_credentials(text, passphrase, args.edge_name)


def _https_get(creds, path, timeout=60):
    controller = creds.controller
    url = f"https://{controller['address']}:{controller['https_port']}{path}"
    with urllib.request.urlopen(url, context=creds.ssl_context(), timeout=timeout) as resp:
        return resp.read()


def _https_post(creds, path, payload, timeout=60):
    controller = creds.controller
    url = f"https://{controller['address']}:{controller['https_port']}{path}"
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=creds.ssl_context(),  # noqa: S310 - https only
                                    timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {"error": exc.reason}


def _choose_bundle(manifest):
    tag = "cp%d%d" % sys.version_info[:2]
    arch = platform.machine()
    for bundle in manifest.get("bundles", []):
        if bundle["python"] == tag and bundle["arch"] == arch:
            return bundle
    have = ", ".join(f"{b['python']}/{b['arch']}" for b in manifest.get("bundles", []))
    raise agent_mod.AgentError(
        f"the controller has no node-agent bundle for {tag}/{arch} (it has: {have or 'none'}); "
        "build one on the controller with kubesalt-controller agent-bundle")


def fetch_bundle(creds, args, workdir):
    """Returns (path, sha256) of the node-agent bundle to install."""
    if args.agent_bundle:
        directory = os.path.dirname(os.path.abspath(args.agent_bundle))
        with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as handle:
            manifest = json.load(handle)
        bundle = _choose_bundle(manifest)
        if bundle["file"] != os.path.basename(args.agent_bundle):
            raise agent_mod.AgentError(f"{args.agent_bundle} is not the bundle for this node "
                                       f"({bundle['file']})")
        return args.agent_bundle, bundle["sha256"]
    manifest = json.loads(_https_get(creds, "/artifacts/agent/manifest.json"))
    bundle = _choose_bundle(manifest)
    path = os.path.join(workdir, bundle["file"])
    data = _https_get(creds, "/artifacts/agent/" + bundle["file"], timeout=300)
    if hashlib.sha256(data).hexdigest() != bundle["sha256"]:
        raise agent_mod.AgentError("the downloaded node-agent bundle does not match its "
                                   "checksum; try again, or check the controller's artifacts")
    with open(path, "wb") as handle:
        handle.write(data)
    return path, bundle["sha256"]


def enroll(creds, node_id, minion_pub):
    request, signature = creds.enrollment_request(node_id, minion_pub, time.time())
    payload = {"request": request, "signature": signature,
               "installer_cert": creds.installer_cert_pem, "minion_pub": minion_pub}
    status, answer = _https_post(creds, "/v1/enroll", payload)
    if status != 200:
        raise EnrollError(answer.get("error") or f"the controller answered {status}")
    return answer


def check_installer(creds, node_id):
    """Ask the controller whether these credentials may still enroll (not revoked, replaced
    or expired by its clock); raises EnrollError with the controller's reason if not."""
    request, signature = creds.check_request(node_id, time.time())
    payload = {"request": request, "signature": signature,
               "installer_cert": creds.installer_cert_pem}
    status, answer = _https_post(creds, "/v1/installer/check", payload)
    if status != 200:
        raise EnrollError(answer.get("error") or f"the controller answered {status}")
    return answer


class EnrollError(Exception):
    pass


def check_context(args, creds, node):
    return prechecks.Context(
        root=ROOT,
        controller_address=creds.controller["address"],
        publish_port=int(creds.controller["publish_port"]),
        ret_port=int(creds.controller["ret_port"]),
        https_port=int(creds.controller["https_port"]),
        ntp_server=creds.controller.get("ntp_server") or creds.controller["address"],
        node_id=node.name,
        cluster=creds.cluster,
        allow_existing_minion=args.multi_minion,
    )


def remove(args, agent):
    customer = identity.customer_minion_present(ROOT)
    if customer and not args.multi_minion:
        return fail("a customer salt-minion is on this node; use -m -d to remove only "
                    "kubesalt's agent and leave it untouched", EXIT_USAGE)
    say("Removing kubesalt node agent")
    removed = agent.remove()
    for path in removed:
        say(f"Removed {path}")
    say("Successfully removed kubesalt node agent" if removed
        else "kubesalt node agent was not installed")
    return EXIT_OK


def install(args, creds, node, agent):
    say("Initiating edge node install")
    ctx = check_context(args, creds, node)
    results = prechecks.run(ctx)
    failures = [r for r in results if r.failed]
    if failures:
        print(format_failures(results), file=sys.stderr, flush=True)
        return fail(f"{len(failures)} precheck(s) failed; nothing on this node was changed",
                    EXIT_PRECHECK)
    try:
        check_installer(creds, node.name)
    except (EnrollError, OSError) as exc:
        return fail(f"the controller refused these credentials: {exc}; nothing on this node "
                    "was changed", EXIT_ENROLL)
    if args.preflight_report:
        print(format_table(preflight.run(ctx)), flush=True)
    say("Provisioning node")
    with tempfile.TemporaryDirectory(prefix="conjurer-") as workdir:
        say("Step 1. Installing node-agent")
        bundle, sha256 = fetch_bundle(creds, args, workdir)
        agent.install_software(bundle, sha256)
    say(f"Step 2. Setting hostname to {node.hostname}")
    identity.set_hostname(node.hostname, root=ROOT, run=agent.run)
    say("Step 3. Installing credentials on node")
    minion_pub = agent.generate_keys()
    agent.write_ca(creds.ca_cert_pem)
    answer = enroll(creds, node.name, minion_pub)
    agent.write_enrollment(node.name, creds.cluster, creds.controller, creds.serial)
    say("Step 4. Configuring node-agent")
    agent.configure(node.name, creds.cluster, creds.controller)
    say("Step 5. Starting node-agent")
    agent.start()
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
    if args.precheck or args.preflight:
        ctx = check_context(args, creds, node)
        if args.preflight:
            print(format_table(preflight.run(ctx)), flush=True)
            return EXIT_OK
        results = prechecks.run(ctx)
        print(format_table(results), flush=True)
        return EXIT_PRECHECK if any(r.failed for r in results) else EXIT_OK
    try:
        return install(args, creds, node, agent)
    except EnrollError as exc:
        return fail(f"the controller refused this node: {exc}", EXIT_ENROLL)
    except (agent_mod.AgentError, OSError, ssl.SSLError, urllib.error.URLError,
            socket.timeout) as exc:
        return fail(f"install failed: {exc}", EXIT_INSTALL)


if __name__ == "__main__":
    sys.exit(main())
