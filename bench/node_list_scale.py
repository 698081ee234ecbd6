"""`salt-run node.list` with thousands of node records (no lab, no minions): a real controller
on loopback whose records and key store hold N enrolled, approved nodes (records written
through the store, one real 2048-bit public key under every node's id in the master's
accepted keys). Times the whole command as an operator waits for it: the list of every node,
one page of 50 (`limit=50 offset=N/2`), and the same runner on an empty cluster, which is
salt-run's start-up and the runner's fixed costs; the difference is what the N records cost.
The three are run in turn, round after round, after one unmeasured round.

    .venv/bin/python -m bench.node_list_scale [--nodes 5000] [--runs 5]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.inventory import keys
from kubesalt.master.inventory.store import Store
from kubesalt.master.layout import Layout
from tests.integration.controller import BIN, Controller, _env


def fill(ctl, cluster, count):
    """Enroll `count` nodes of `cluster` in the records, each with its key accepted."""
    layout = Layout.for_root(ctl.root)
    store = Store(layout.state_dir)
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() \
        .public_bytes(serialization.Encoding.PEM,
                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    digest = keys.spki_sha256(pem)
    accepted = Path(layout.pki_dir) / "minions"
    for i in range(count):
        node_id = f"node-{i:08x}-10-{i // 62500}-{i // 250 % 250}-{i % 250}-{cluster}"
        store.enroll_node(node_id, cluster, digest, "01", f"10.{i // 62500}.{i // 250 % 250}."
                          f"{i % 250}", time.time())
        (accepted / node_id).write_text(pem)


def timed_once(ctl, args):
    """Seconds of one `salt-run node.list ARGS`, and the rows it listed."""
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "salt-run"), "-c", str(ctl.conf_dir), "--out=json",
                           "node.list", *args], capture_output=True, text=True,
                          timeout=600, env=_env(), stdin=subprocess.DEVNULL, check=False)
    seconds = round(time.monotonic() - started, 2)
    if proc.returncode != 0:
        raise RuntimeError(f"salt-run node.list {args} failed: {proc.stdout}{proc.stderr}")
    return seconds, len(json.loads(proc.stdout))


def timed(ctl, variants, runs):
    """{name: {median_s, runs_s, rows}} of each variant's args, run in turn (one of each per
    round, after one unmeasured round), so a drift of the machine or of the master settling
    after its start weighs on all of them alike."""
    for args in variants.values():
        timed_once(ctl, args)
    results = {name: {"runs_s": []} for name in variants}
    for _ in range(runs):
        for name, args in variants.items():
            seconds, results[name]["rows"] = timed_once(ctl, args)
            results[name]["runs_s"].append(seconds)
    for result in results.values():
        result["median_s"] = statistics.median(result["runs_s"])
    return results


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args(argv)
    root = tempfile.mkdtemp(prefix="ksnl-")
    ctl = Controller(root)
    try:
        ctl.init()
        ctl.start()
        ctl.run_ok("cluster.create", "fleet")
        ctl.run_ok("cluster.create", "empty")
        started = time.monotonic()
        fill(ctl, "fleet", options.nodes)
        filled = round(time.monotonic() - started, 1)
        timings = timed(ctl, {"empty_cluster": ["cluster=empty"], "every_node": [],
                              "page_of_50": ["limit=50", f"offset={options.nodes // 2}"]},
                        options.runs)
        start = timings["empty_cluster"]["median_s"]
        result = {"nodes": options.nodes, "filled_s": filled, **timings,
                  "every_node_beyond_start_s": round(timings["every_node"]["median_s"] - start,
                                                     2),
                  "page_beyond_start_s": round(timings["page_of_50"]["median_s"] - start, 2)}
        print(json.dumps(result))
    finally:
        ctl.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
