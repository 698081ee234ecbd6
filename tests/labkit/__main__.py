"""python -m tests.labkit {prepare, up --nodes N, status, exec NODE -- CMD..., push NODE SRC DEST,
reboot NODE, power-cut NODE, down, artifacts VERSION DEST}: the lab from the command line (run
from the repository root, as root)."""

import argparse
import json
import sys
import time

from . import artifacts, rootfs
from .lab import Lab, LabError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.labkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="build the cached base image and package layers")
    up = sub.add_parser("up", help="boot node1..nodeN")
    up.add_argument("--nodes", type=int, default=4)
    sub.add_parser("status", help="nodes, addresses, bridge")
    run = sub.add_parser("exec", help="run a command inside a node")
    run.add_argument("node")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    push = sub.add_parser("push", help="copy a host file or directory into a node")
    push.add_argument("node")
    push.add_argument("source")
    push.add_argument("dest")
    for name, help_text in (("reboot", "reboot a node cleanly (systemctl reboot in it)"),
                            ("power-cut", "kill a node at once and boot it on the same disk")):
        power = sub.add_parser(name, help=help_text + "; returns once it runs again")
        power.add_argument("node")
    sub.add_parser("down", help="remove every node, mount, link and cgroup of the lab")
    source = sub.add_parser("artifacts", help="write the artifact source directory of a "
                                              "Kubernetes release (for artifacts.sync)")
    source.add_argument("version")
    source.add_argument("dest")
    args = parser.parse_args(argv)
    lab = Lab()
    try:
        if args.command == "prepare":
            print(json.dumps({"built": rootfs.prepare(), "cache": str(rootfs.CACHE)}))
        elif args.command == "up":
            lab.up(args.nodes)
            print(json.dumps(lab.status(), indent=2))
        elif args.command == "status":
            print(json.dumps(lab.status(), indent=2))
        elif args.command == "exec":
            argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            proc = lab.node(args.node).run(argv)
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr)
            return proc.returncode
        elif args.command == "push":
            lab.node(args.node).push(args.source, args.dest)
        elif args.command == "artifacts":
            written = artifacts.build(args.dest, args.version)
            print(json.dumps({"written": written, **artifacts.describe()}, indent=2))
        elif args.command in ("reboot", "power-cut"):
            print(json.dumps(_power_event(lab.node(args.node), args.command), indent=2))
        elif args.command == "down":
            lab.down()
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 0


def _power_event(node, event):
    before = node.pid
    started = time.monotonic()
    state = node.reboot() if event == "reboot" else node.power_cut()
    return {"node": node.name, "event": event, "systemd_pid_before": before,
            "systemd_pid": node.pid, "state": state,
            "seconds": round(time.monotonic() - started, 1)}


if __name__ == "__main__":
    sys.exit(main())
