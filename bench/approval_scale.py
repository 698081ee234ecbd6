"""Seconds from starting conjurer on N lab nodes at once (auto-approve on) until all N are
APPROVED, next to the same for 1 node; prints both and the ratio.

The 1-node run has a node of its own (N + 1 nodes are booted): renewing that node before the
N-node run would delete its files, and creating files on this machine's ext4 is several times
slower for ~20 s after a deletion. `--renew` measures the old way.

    sudo .venv/bin/python -m bench.approval_scale [--nodes 20]
"""

import argparse
import contextlib
import json
import os
import threading
import time

import psutil

from bench.lab_session import conjurer_on, lab_and_controller, node_rows, wait_until
from kubesalt.master.controller import daemon
from kubesalt.master.layout import Layout


def measure(lab, controller, root, cluster, nodes):
    controller.run_ok("cluster.create", cluster, "os=debian-12", "auto_approve=True")
    creds = root / cluster
    controller.run_ok("cluster.installer", cluster, f"dest={creds}")
    cpu_before, started = (_host_cpu_seconds(), _controller_cpu_seconds(root)), \
        time.monotonic()
    worker = threading.Thread(target=conjurer_on, args=(nodes, cluster, creds))
    worker.start()

    def all_approved():
        return len(node_rows(controller, cluster, "APPROVED")) == len(nodes)

    finished = wait_until(all_approved, 3600, interval=0.3)
    worker.join()
    return (round(finished - started, 1), round(_host_cpu_seconds() - cpu_before[0], 1),
            round(_controller_cpu_seconds(root) - cpu_before[1], 1))


def _controller_cpu_seconds(root):
    """CPU time of the controller's daemons (salt-master and its workers, salt-api, the node
    endpoint): what a fleet's enrollments cost the controller itself, apart from the nodes
    (which in the lab share this machine's cores)."""
    layout = Layout.for_root(root)
    procs = daemon.controller_processes(layout, (daemon.MASTER, daemon.API))
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def _host_cpu_seconds():
    """CPU time (user + system, every core) this machine spent since boot: with N nodes
    enrolling at once the wall time is bound by it on a small machine."""
    with open("/proc/stat") as handle:
        fields = handle.readline().split()[1:]
    return (int(fields[0]) + int(fields[1]) + int(fields[2])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--renew", action="store_true",
                        help="the 1-node run's node renewed and reused (as measured before "
                             "2026-11-27)")
    args = parser.parse_args()
    with lab_and_controller(args.nodes + (0 if args.renew else 1)) as (lab, controller, root):
        one = measure(lab, controller, root, "one", lab.nodes[:1])
        if args.renew:
            lab.renew(lab.nodes[:1])
            many = measure(lab, controller, root, "many", lab.nodes)
        else:
            many = measure(lab, controller, root, "many", lab.nodes[1:])
    print(json.dumps({"1_node_s": one[0], f"{args.nodes}_nodes_s": many[0],
                      "ratio": round(many[0] / one[0], 2), "1_node_cpu_s": one[1],
                      f"{args.nodes}_nodes_cpu_s": many[1], "1_node_controller_cpu_s": one[2],
                      f"{args.nodes}_nodes_controller_cpu_s": many[2]}))


if __name__ == "__main__":
    main()
