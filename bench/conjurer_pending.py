"""Median seconds from conjurer's start on a lab node to the node's key pending on the
controller (DISCOVERED), with the agent software already in the controller's store (its
`start` builds it); then what the agent costs the node (installed MB, minion memory).

Each run has a fresh node of its own, all booted before the first run: renewing one node
between runs deletes the last run's files, and on this machine's ext4 creating files is several
times slower for ~20 s after a deletion, which made every run after the first up to 2.5x slower.
`--renew` measures the old way, one node renewed between runs.

`--through proxy` puts each node behind an edge site's firewall that lets out only the site's
HTTP proxy (tinyproxy on the lab bridge, basic auth, CONNECT to the agent gateway alone; the
cluster created with that proxy); `--through gateway` lets out only the gateway's port
(conjurer -gateway). The default, `direct`, is the open network.

    sudo .venv/bin/python -m bench.conjurer_pending [--runs 5] [--through direct|proxy|gateway]
"""

import argparse
import contextlib
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.lab_session import DEST, agent_footprint, lab_and_controller, node_rows, wait_until
from tests.labkit.lab import NETWORK
from tests.tinyproxy import TinyProxy


@contextlib.contextmanager
def site(through, lab, controller):
    """The cluster's settings, conjurer's flags and each node's open ports for `through`."""
    if through == "direct":
        yield [], [], None
        return
    if through == "gateway":
        yield [], ["-gateway"], [controller.gateway_port]
        return
    proxy = TinyProxy(Path(tempfile.mkdtemp(prefix="ksb-proxy-")), auth=("bench", "bench"),
                      connect_ports=[controller.gateway_port], listen=lab.bridge_address,
                      allow=NETWORK).start()
    try:
        yield [f"proxy={{https: '{proxy.url}'}}"], [], [proxy.port]
    finally:
        proxy.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--renew", action="store_true",
                        help="one node, renewed between runs (as measured before 2026-11-27)")
    parser.add_argument("--through", choices=("direct", "proxy", "gateway"), default="direct")
    args = parser.parse_args()
    samples, footprint = [], None
    with lab_and_controller(1 if args.renew else args.runs) as (lab, controller, root), \
            site(args.through, lab, controller) as (settings, flags, open_ports):
        controller.run_ok("cluster.create", "bench", "os=debian-12", *settings)
        creds = root / "creds"
        controller.run_ok("cluster.installer", "bench", f"dest={creds}")
        for run in range(args.runs):
            node = lab.renew()[0] if args.renew else lab.nodes[run]
            if open_ports:
                node.restrict_egress(lab.bridge_address, open_ports)
            node.push(creds, DEST)
            argv = ["python3", f"{DEST}/conjurer", "-edge-name=bench",
                    f"-passphrase-file={DEST}/bench-passphrase.txt",
                    f"-creds-file={DEST}/bench.pem", *flags]
            started = time.monotonic()
            worker = threading.Thread(target=node.run, args=(argv,))
            worker.start()

            def pending(node=node):
                rows = node_rows(controller, "bench", "DISCOVERED")
                return any(r["address"] == node.address for r in rows)

            samples.append(round(wait_until(pending, 600, interval=0.3) - started, 1))
            worker.join()
            footprint = agent_footprint(node)
            for row in controller.run_ok("node.list", "cluster=bench", "status=DISCOVERED"):
                controller.run_ok("node.reject", row["id"])
    print(json.dumps({"through": args.through, "runs": samples,
                      "median_s": round(statistics.median(samples), 1), **footprint}))


if __name__ == "__main__":
    main()
