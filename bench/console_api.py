"""What the web console's two busiest pages cost with 1,000 nodes in one cluster: the REST API
calls each page makes (timed over HTTPS on loopback, a logged-in operator), and the time a real
headless Chromium takes from navigation until the page shows its rows.

No lab: the 1,000 nodes are enrollment records with accepted keys, written into a real
controller's records and Salt key store, which is all `node.list` and `cluster.list` read.

    .venv/bin/python -m bench.console_api [--nodes 1000] [--runs 15]
"""

import argparse
import json
import statistics
import time

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.inventory import keys
from kubesalt.master.inventory.store import Store
from kubesalt.master.layout import Layout
from tests.integration.controller import running

OPERATOR = ("bench", "bench-Secret-0001")
CLUSTER = "big"

# The calls each page makes when it opens (one request each; the nodes page batches its
# three calls into one request, as the console does).
PAGES = {
    "clusters": [{"fun": "cluster.list"}],
    "nodes": [{"fun": "cluster.show", "name": CLUSTER},
              {"fun": "node.list", "cluster": CLUSTER, "sort": "hostname"},
              {"fun": "cluster.status", "name": CLUSTER}],
}


def fill(root, count):
    """`count` nodes of CLUSTER, each enrolled with an accepted key; 10 more small clusters."""
    layout = Layout.for_root(root)
    store = Store(layout.state_dir)
    pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() \
        .public_bytes(serialization.Encoding.PEM,
                      serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = keys.spki_sha256(pub)
    accepted = layout.pki_dir / "minions"
    for number in range(count):
        address = f"10.{number // 65536}.{number // 256 % 256}.{number % 256}"
        node_id = f"node-{number:08x}-{address.replace('.', '-')}-{CLUSTER}"
        (accepted / node_id).write_bytes(pub)
        store.enroll_node(node_id, CLUSTER, digest, f"serial-{number}", address)


def timed(session, url, token, calls, runs):
    body = [dict(call, client="runner") for call in calls]
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        resp = session.post(f"{url}/", json=body, timeout=120,
                            headers={"X-Auth-Token": token, "Accept": "application/json"})
        resp.raise_for_status()
        seconds.append(time.perf_counter() - started)
    return _stats(seconds), len(resp.content)


def _stats(seconds):
    ordered = sorted(seconds)
    return {"median_s": round(statistics.median(ordered), 3),
            "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
            "max_s": round(ordered[-1], 3)}


def browser(ctl, runs):
    """Seconds from navigation (a fresh page load, the session kept in sessionStorage) to the
    page showing its first rows, in headless Chromium."""
    from tests.console import browser as console_browser  # noqa: PLC0415 - needs Playwright

    results = {}
    with console_browser.launch(ctl) as page:
        console_browser.login(page, ctl, *OPERATOR)
        for name, route, ready in (
                ("clusters", "#/clusters", "[data-testid=clusters-table] tbody tr"),
                ("nodes", f"#/clusters/{CLUSTER}/nodes",
                 "[data-testid=nodes-table] tbody tr[data-row]")):
            seconds = []
            for _ in range(runs):
                page.goto("about:blank")  # a whole page load each time: scripts, login state
                started = time.perf_counter()
                page.goto(f"{ctl.api_url}/console/{route}")
                page.locator(ready).first.wait_for(timeout=30_000)
                seconds.append(time.perf_counter() - started)
            results[name] = _stats(seconds)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-browser", action="store_true")
    options = parser.parse_args()
    with running("ksbc-", [(*OPERATOR[:1], "operator", OPERATOR[1])]) as ctl:
        ctl.run_ok("cluster.create", CLUSTER)
        for number in range(10):
            ctl.run_ok("cluster.create", f"small{number}")
        fill(ctl.root, options.nodes)
        session = requests.Session()
        session.trust_env = False
        session.verify = str(ctl.ca_file)
        token = session.post(f"{ctl.api_url}/login", timeout=30, json={
            "username": OPERATOR[0], "password": OPERATOR[1], "eauth": "file"}) \
            .json()["return"][0]["token"]
        result = {"nodes": options.nodes, "runs": options.runs, "api": {}}
        for page, calls in PAGES.items():
            stats, size = timed(session, ctl.api_url, token, calls, options.runs)
            result["api"][page] = dict(stats, bytes=size)
        if not options.no_browser:
            result["browser"] = browser(ctl, max(3, options.runs // 3))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
