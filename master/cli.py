"""kubesalt-controller: set up, start, stop and inspect the kubesalt controller (a salt-master)."""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import salt.crypt

from . import agent_bundle, config, daemon, pki
from .layout import Layout

UNIT_NAME = "kubesalt-controller.service"
UNIT_PATH = Path("/etc/systemd/system") / UNIT_NAME


def _systemd_running():
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def install_unit():
    template = (Path(__file__).parent / "systemd" / UNIT_NAME).read_text()
    UNIT_PATH.write_text(template.replace("@SALT_MASTER@", daemon.salt_script("salt-master")))
    if _systemd_running():
        subprocess.run(["systemctl", "daemon-reload"], check=True)


def ensure_master_keys(layout):
    """Create the master's key pair now, so installer credentials can pin its fingerprint
    before the daemon has ever run. An existing pair is kept."""
    if not (layout.pki_dir / "master.pem").exists():
        layout.pki_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(layout.pki_dir, 0o700)
        salt.crypt.write_keys(str(layout.pki_dir), "master", 4096)


def ensure_endpoint_cert(layout, ca, settings):
    """The HTTPS endpoint's certificate names every address nodes may use; reissued when
    those change."""
    addresses = sorted({settings["advertise"], settings["interface"]} - {"0.0.0.0", "::"})
    names_file = layout.kubesalt_pki / "endpoint.names"
    cert_file = layout.kubesalt_pki / "endpoint.crt"
    if cert_file.exists() and names_file.exists() and \
            names_file.read_text().split() == addresses:
        return
    cert_pem, key_pem = ca.issue_server_cert(names=[socket.getfqdn()], ips=addresses,
                                             ttl_days=825)
    key_file = layout.kubesalt_pki / "endpoint.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key_pem)
    cert_file.write_text(cert_pem)
    names_file.write_text("\n".join(addresses) + "\n")


def cmd_init(args, layout):
    settings = config.settings_for(layout, interface=args.interface,
                                   publish_port=args.publish_port, ret_port=args.ret_port,
                                   https_port=args.https_port, advertise=args.advertise,
                                   ntp_server=args.ntp_server)
    config.write(layout, settings)
    ca = pki.ensure_ca(layout.kubesalt_pki)
    ensure_master_keys(layout)
    ensure_endpoint_cert(layout, ca, settings)
    if not layout.embedded:
        install_unit()
    return {"config_dir": str(layout.conf_dir), "state_dir": str(layout.state_dir), **settings}


def cmd_start(args, layout):
    if not layout.embedded and _systemd_running():
        subprocess.run(["systemctl", "start", UNIT_NAME], check=True)
    return daemon.start(layout)


def cmd_stop(args, layout):
    if not layout.embedded and _systemd_running():
        subprocess.run(["systemctl", "stop", UNIT_NAME], check=True)
        return {"stopped": True}
    return {"stopped": daemon.stop(layout)}


def cmd_agent_bundle(args, layout):
    entry = agent_bundle.build(layout.artifacts_dir, wheelhouse=args.wheelhouse)
    return {"artifacts_dir": str(layout.artifacts_dir), **entry}


def cmd_status(args, layout):
    return daemon.status(layout)


def _print_human(result):
    for key, value in result.items():
        print(f"{key}: {value}")


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
                                            "(conjurer's time checks; default: the "
                                            "controller's address)")
    init.add_argument("--https-port", type=int,
                      help="HTTPS port nodes download from (default 4507)")
    init.set_defaults(func=cmd_init)
    bundle = with_root(sub.add_parser(
        "agent-bundle", help="put the node-agent software (Salt wheels) into the artifact "
                             "store nodes download from"))
    bundle.add_argument("--wheelhouse", help="use the wheels in this directory instead of "
                                             "fetching them (air-gapped sites)")
    bundle.set_defaults(func=cmd_agent_bundle)
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
    except (daemon.ControllerError, subprocess.CalledProcessError) as exc:
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
