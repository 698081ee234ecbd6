"""kubesalt-controller: set up, start, stop and inspect the kubesalt controller (a salt-master)."""

import argparse
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import salt.crypt

from kubesalt.master.agent import bundle as agent_bundle
from kubesalt.master.api import model as api
from kubesalt.master.controller import config
from kubesalt.master.controller import database
from kubesalt.master.controller import daemon
from kubesalt.master.trust import pki
from kubesalt.master.inventory import storage
from kubesalt.master.inventory import store as store_mod
from kubesalt.master.layout import Layout
from kubesalt.master.ops import lease

UNIT_NAME = "kubesalt-controller.service"
UNIT_PATH = Path("/etc/systemd/system") / UNIT_NAME
API_UNIT_NAME = "kubesalt-controller-api.service"


def _systemd_running():
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def install_unit():
    """Write both units and enable them: a controller host's controller comes back by itself
    after a reboot or a power cut. `start` starts them; enabling starts nothing."""
    scripts = {f"@{name.upper().replace('-', '_')}@": daemon.salt_script(name)
               for name in ("salt-master", "salt-api", "kubesalt-controller")}
    for unit in (UNIT_NAME, API_UNIT_NAME):
        text = (Path(__file__).parent / "systemd" / unit).read_text()
        for placeholder, script in scripts.items():
            text = text.replace(placeholder, script)
        (UNIT_PATH.parent / unit).write_text(text)
    if _systemd_running():
        subprocess.run(["systemctl", "daemon-reload"], check=True)
    if shutil.which("systemctl") is not None:
        # works without a running systemd too (an image being built): it only links the units
        subprocess.run(["systemctl", "--quiet", "enable", UNIT_NAME, API_UNIT_NAME],
                       check=True)


def ensure_master_keys(layout):
    """Create the master's key pair now, so installer credentials can pin its fingerprint
    before the daemon has ever run. An existing pair is kept."""
    if not (layout.pki_dir / "master.pem").exists():
        layout.pki_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(layout.pki_dir, 0o700)
        salt.crypt.write_keys(str(layout.pki_dir), "master", 4096)


def ensure_endpoint_cert(layout, ca, settings, stem="endpoint"):
    """The HTTPS endpoint's (or, with stem="api", the REST API's) certificate from the
    controller CA names every address nodes and clients may use; reissued when those
    change."""
    addresses = sorted({settings["advertise"], settings["interface"]} - {"0.0.0.0", "::"})
    if stem == "api" and settings["interface"] in ("0.0.0.0", "::"):
        addresses = sorted(set(addresses) | {"127.0.0.1"})
    names_file = layout.kubesalt_pki / f"{stem}.names"
    cert_file = layout.kubesalt_pki / f"{stem}.crt"
    if cert_file.exists() and names_file.exists() and \
            names_file.read_text().split() == addresses:
        return
    cert_pem, key_pem = ca.issue_server_cert(names=[socket.getfqdn()], ips=addresses,
                                             ttl_days=825)
    key_file = layout.kubesalt_pki / f"{stem}.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key_pem)
    cert_file.write_text(cert_pem)
    names_file.write_text("\n".join(addresses) + "\n")


def cmd_init(args, layout):
    # first: a database that cannot be used refuses the init before anything is written
    database_shown = None
    if args.database:
        url = database.url_with_password(args.database, args.database_password_file,
                                         "--database-password-file")
        database_shown = database.choose(layout, url)
    settings = config.settings_for(layout, interface=args.interface,
                                   publish_port=args.publish_port, ret_port=args.ret_port,
                                   https_port=args.https_port, advertise=args.advertise,
                                   ntp_server=args.ntp_server, api_port=args.api_port,
                                   gateway_port=args.gateway_port)
    config.write(layout, settings)
    ca = pki.ensure_ca(layout.kubesalt_pki)
    ensure_master_keys(layout)
    ensure_endpoint_cert(layout, ca, settings)
    ensure_endpoint_cert(layout, ca, settings, stem="api")
    result = {"config_dir": str(layout.conf_dir), "state_dir": str(layout.state_dir),
              "database": database_shown or database.shown(layout), **settings}
    if not layout.embedded:
        install_unit()
        result["units"] = [UNIT_NAME, API_UNIT_NAME]
    return result


def ensure_agent_bundle(layout):
    """The node-agent bundle for this controller's own Python and architecture, built when it
    is missing or stale (one line on stderr then; pip's output, if pip runs, in a log file).
    A failed build does not keep the controller down: it is reported, and nodes are told to
    ask for `kubesalt-controller agent-bundle`."""
    log_file = layout.log_file.parent / agent_bundle.PIP_LOG
    try:
        entry, built = agent_bundle.ensure(
            layout.artifacts_dir, log_file,
            say=lambda line: print(f"kubesalt-controller: {line}", file=sys.stderr, flush=True))
    except (agent_bundle.BundleError, OSError) as exc:
        print(f"kubesalt-controller: the node-agent bundle could not be built: {exc}",
              file=sys.stderr, flush=True)
        return {"agent_bundle_error": str(exc)}
    return {"agent_bundle": f"{entry['python']}/{entry['arch']} "
                            f"{'built' if built else 'up to date'}"}


def cmd_start(args, layout):
    if not config.read_settings(layout):
        return daemon.start(layout)  # refuses, naming `init`
    bundle = ensure_agent_bundle(layout)
    result = _start(layout)
    return {**result, **bundle, "agent_bundles": agent_bundle.summary(layout.artifacts_dir)}


def _start(layout):
    if not layout.embedded and _systemd_running():
        # The units' KillMode=process leaves a killed main process's children holding the
        # ports, and every restart systemd tries then fails on them.
        daemon.end_orphans(layout, daemon.MASTER)
        daemon.end_orphans(layout, daemon.API)
        subprocess.run(["systemctl", "start", UNIT_NAME, API_UNIT_NAME], check=True)
        return daemon.start(layout, spawn=False)
    return daemon.start(layout)


def cmd_end_orphans(args, layout):
    """What the units run before starting a daemon: its main process is not running, so any
    process left of it (a crashed main process's children, still holding the ports) goes."""
    return {"ended": daemon.end_orphans(layout, args.program)}


def cmd_stop(args, layout):
    if not layout.embedded and _systemd_running():
        # What daemon.stop does around the daemons, with systemd stopping the daemons:
        # executors and salt-run processes are not in the units.
        subprocess.run(["systemctl", "stop", API_UNIT_NAME], check=True)
        daemon.interrupt_operations(layout)
        daemon.end_runners(layout)
        subprocess.run(["systemctl", "stop", UNIT_NAME], check=True)
        daemon.end_orphans(layout, daemon.MASTER)
        daemon.end_orphans(layout, daemon.API)
        daemon.end_runners(layout, grace=0)
        return {"stopped": True}
    return {"stopped": daemon.stop(layout)}


def _read_password(args):
    """From --password-file, or stdin (prompted twice on a terminal); never from argv."""
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as handle:
            password = handle.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise daemon.ControllerError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise daemon.ControllerError("empty password")
    return password


def running_operations(layout):
    """Operations whose executor is alive: a controller restart would interrupt them."""
    if not storage.exists(layout.state_dir):
        return []
    return [op_id for op_id, executor in store_mod.Store(layout.state_dir).active_operations()
            if lease.here(executor) and lease.alive(executor)]


def cmd_migrate_database(args, layout):
    """Move the records from SQLite to PostgreSQL. A running controller is stopped for the
    copy (no record may change under it) and started again on PostgreSQL; refused while an
    operation runs, which the stop would interrupt."""
    url = database.url_with_password(args.url, args.password_file, "--password-file")
    database.check_move(layout, url)
    running = running_operations(layout)
    if running:
        raise daemon.ControllerError(
            f"operation {', '.join(running)} is running and stopping the controller for the "
            "move would interrupt it; wait for it to end (or salt-run cluster.cancel "
            "CLUSTER), then migrate")
    was_running = daemon.read_pid(layout) is not None
    if was_running:
        cmd_stop(args, layout)
    try:
        result = database.move(layout, url)
    finally:
        if was_running:
            _start(layout)
    return {**result, "restarted": was_running}


def _apply_acl_change(layout):
    """The master and salt-api read external_auth at start: rewrite it, and restart a running
    controller so the change applies — unless an operation runs, which a restart would
    interrupt: then the change waits for the next restart (returned as a note)."""
    config.write_api(layout, config.settings_for(layout))
    if daemon.read_pid(layout) is None:
        return False
    running = running_operations(layout)
    if running:
        return (f"not restarted: operation {', '.join(running)} is running and a restart would "
                "interrupt it; the change applies when the controller next restarts "
                "(kubesalt-controller stop && kubesalt-controller start once it ends)")
    if not layout.embedded and _systemd_running():
        subprocess.run(["systemctl", "restart", UNIT_NAME, API_UNIT_NAME], check=True)
        daemon.start(layout, spawn=False)
    else:
        daemon.stop(layout)
        daemon.start(layout)
    return True


def cmd_user_add(args, layout):
    try:
        api.check_user_name(args.name)
    except ValueError as exc:
        raise daemon.ControllerError(str(exc)) from None
    password = _read_password(args)
    try:
        changed = api.add_user(layout, args.name, args.role, password)
    except ValueError as exc:
        raise daemon.ControllerError(str(exc)) from None
    restarted = _apply_acl_change(layout) if changed and not args.no_restart else False
    return {"user": args.name, "role": args.role, "acl_changed": changed,
            **_restart_outcome(restarted), "user_store": str(layout.api_users_file)}


def cmd_user_remove(args, layout):
    try:
        api.remove_user(layout, args.name)
    except ValueError as exc:
        raise daemon.ControllerError(str(exc)) from None
    restarted = False if args.no_restart else _apply_acl_change(layout)
    return {"removed": args.name, **_restart_outcome(restarted)}


def _restart_outcome(restarted):
    if isinstance(restarted, str):
        return {"restarted": False, "note": restarted}
    return {"restarted": restarted}


def cmd_user_list(args, layout):
    return {"users": api.read_roles(layout)}


def cmd_agent_bundle(args, layout):
    """One line per step on stderr; pip's output only in the log, and on a failure the last
    lines this build wrote there (pip says what went wrong at the end)."""
    log_file = layout.log_file.parent / agent_bundle.PIP_LOG
    written_before = log_file.stat().st_size if log_file.exists() else 0

    def step(line):
        print(f"kubesalt-controller: {line}", file=sys.stderr, flush=True)

    try:
        entry = agent_bundle.build(layout.artifacts_dir, python=args.python, arch=args.arch,
                                   wheelhouse=args.wheelhouse, log_file=log_file, say=step)
    except agent_bundle.BundleError as exc:
        message = str(exc)
        tail = agent_bundle.log_tail(log_file, since=written_before)
        if tail:
            message += f"\n  the last lines of {log_file}:\n" + "\n".join(
                f"    {line}" for line in tail)
        raise daemon.ControllerError(message) from None
    result = {"artifacts_dir": str(layout.artifacts_dir), **entry}
    if not entry["compiled"]:
        result["note"] = (f"no .pyc files: this controller runs Python "
                          f"{agent_bundle.own_python()} and cannot byte-compile for "
                          f"{entry['python']}; nodes compile what they import on first start")
    return result


def unit_states():
    """{unit: "active, enabled"} as systemd sees the controller's two units."""
    states = {}
    for unit in (UNIT_NAME, API_UNIT_NAME):
        answers = [subprocess.run(["systemctl", verb, unit], capture_output=True, text=True,
                                  check=False).stdout.strip() or "unknown"
                   for verb in ("is-active", "is-enabled")]
        states[unit] = ", ".join(answers)
    return states


def cmd_status(args, layout):
    result = {**daemon.status(layout), "database": database.shown(layout),
              "agent_bundles": agent_bundle.summary(layout.artifacts_dir)}
    if not layout.embedded and _systemd_running():
        result["units"] = unit_states()
    return result


def _print_human(result):
    for key, value in result.items():
        if key == "agent_bundles":
            print(f"{key}:" + ("" if value else " none"))
            for b in value:
                print(f"  {b['python']}/{b['arch']}: salt {b['salt']}, {b['size_mb']} MB"
                      + ("" if b["compiled"] else ", no .pyc") + f" ({b['file']})")
        else:
            print(f"{key}: {value}")


def _port_or_off(text):
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 1-65535 (443 "
                                         "usually), or 0 to turn the agent gateway off")
    return port


def parser():
    p = argparse.ArgumentParser(prog="kubesalt-controller", description=__doc__)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = p.add_subparsers(dest="command", required=True)

    def with_root(sp):
        sp.add_argument("--root", help="self-contained controller under DIR (default: the "
                                       "standard /etc/salt + /var/lib/kubesalt layout)")
        return sp

    init = with_root(sub.add_parser("init", help="write the controller configuration"))
    init.add_argument("--interface", help="address the master listens on (default 127.0.0.1)")
    init.add_argument("--publish-port", type=int, help="Salt publish port (default 4505)")
    init.add_argument("--ret-port", type=int, help="Salt return port (default 4506)")
    init.add_argument("--advertise", help="address nodes use to reach the controller "
                                          "(default: the interface, or this host's address "
                                          "when listening on all interfaces)")
    init.add_argument("--ntp-server", help="NTP server nodes must reach and agree with "
                                            "(conjurer's time check; without it, nodes' "
                                            "clocks are compared with the controller's)")
    init.add_argument("--https-port", type=int,
                      help="HTTPS port nodes download from (default 4507)")
    init.add_argument("--api-port", type=int,
                      help="HTTPS port of the REST API, salt-api (default 8443)")
    init.add_argument("--database", metavar="URL",
                      help="keep the records in PostgreSQL: postgresql://USER:PASSWORD@HOST"
                           "[:PORT]/DATABASE, a database USER owns (default: SQLite in the "
                           "state directory); the URL is kept in a file only root reads")
    init.add_argument("--database-password-file", metavar="FILE",
                      help="the database password from the first line of FILE instead of "
                           "in the URL (a command line is visible to every user of the host)")
    init.add_argument("--gateway-port", type=_port_or_off, metavar="PORT",
                      help="also serve the agents' traffic (publish, return, HTTPS) behind "
                           "this one TLS port, for nodes behind an HTTP proxy or allowed one "
                           "outbound port: 443 usually; 0 turns it off (the default)")
    init.set_defaults(func=cmd_init)
    user = sub.add_parser("user", help="REST API users (Salt file eauth, roles operator and "
                                       "viewer)")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = with_root(user_sub.add_parser(
        "add", help="add a user or change their role or password; the password is read from "
                    "--password-file or stdin, never from the command line"))
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=api.ROLE_NAMES)
    add.add_argument("--password-file", help="read the password from the first line of FILE")
    add.add_argument("--no-restart", action="store_true",
                     help="do not restart a running controller (a new user or role then "
                          "applies at the next start)")
    add.set_defaults(func=cmd_user_add)
    remove = with_root(user_sub.add_parser("remove", help="remove a user"))
    remove.add_argument("name")
    remove.add_argument("--no-restart", action="store_true")
    remove.set_defaults(func=cmd_user_remove)
    with_root(user_sub.add_parser("list", help="users and their roles")).set_defaults(
        func=cmd_user_list)
    bundle = with_root(sub.add_parser(
        "agent-bundle", help="build the node-agent software (Salt and its dependencies, "
                             "installed) into the artifact store nodes download from; "
                             "`start` does it for this controller's own Python and "
                             "architecture"))
    bundle.add_argument("--python", help="for nodes running this Python 3 minor version, e.g. "
                                         "3.10 (default: the controller's); another version "
                                         "is installed by pip, with that Python's .pyc files "
                                         "only when python3.X is on this machine (else from "
                                         "binary wheels, without .pyc files)")
    bundle.add_argument("--arch", help="for nodes of this architecture, x86_64 or aarch64 "
                                       "(default: the controller's)")
    bundle.add_argument("--wheelhouse", help="install from the wheels in this directory "
                                             "instead of the package index (air-gapped "
                                             "sites): salt and all its dependencies, for "
                                             "that Python and architecture")
    bundle.set_defaults(func=cmd_agent_bundle)
    orphans = with_root(sub.add_parser(
        "end-orphans", help="end the processes a crashed salt-master or salt-api left holding "
                            "its ports (the systemd units run it before each start)"))
    orphans.add_argument("program", choices=(daemon.MASTER, daemon.API))
    orphans.set_defaults(func=cmd_end_orphans)
    migrate = with_root(sub.add_parser(
        "migrate-database", help="move the records from SQLite to an empty PostgreSQL "
                                 "database and use it from then on (a running controller "
                                 "is restarted; refused while an operation runs)"))
    migrate.add_argument("url", metavar="URL",
                         help="postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE")
    migrate.add_argument("--password-file", metavar="FILE",
                         help="the database password from the first line of FILE instead of "
                              "in the URL")
    migrate.set_defaults(func=cmd_migrate_database)
    for name, func, text in (("start", cmd_start, "start the controller and wait until it "
                                                  "answers"),
                             ("stop", cmd_stop, "stop the controller"),
                             ("status", cmd_status, "is it running, its ports, its key")):
        with_root(sub.add_parser(name, help=text)).set_defaults(func=func)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    if os.geteuid() != 0 and args.root is None:
        print("kubesalt-controller: the standard layout needs root; use --root DIR for a "
              "self-contained controller", file=sys.stderr)
        return 2
    layout = Layout.for_root(args.root)
    try:
        result = args.func(args, layout)
    except (daemon.ControllerError, subprocess.CalledProcessError,
            database.DatabaseUnavailable) as exc:
        print(f"kubesalt-controller: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        _print_human(result)
    if args.command == "status" and not result["running"]:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
