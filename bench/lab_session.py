"""Shared by the benchmarks: a lab and a controller on its bridge, torn down at the end."""

import contextlib
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.integration.controller import Controller
from tests.lab import Lab

DEST = "/root/kubesalt"


@contextlib.contextmanager
def lab_and_controller(nodes):
    lab = Lab()
    root = Path(tempfile.mkdtemp(prefix="ksb-"))
    controller = None
    try:
        lab.up(nodes)
        controller = Controller(root, interface=lab.bridge_address)
        controller.start_for_lab(lab)
        yield lab, controller, root
    finally:
        if controller is not None:
            controller.stop()
        lab.down()
        shutil.rmtree(root, ignore_errors=True)


def conjurer_on(nodes, cluster, creds):
    """Run conjurer on every node at once; returns the seconds each took."""
    def run(node):
        node.push(creds, DEST)
        started = time.monotonic()
        proc = node.run(["python3", f"{DEST}/conjurer", f"-edge-name={cluster}",
                         f"-passphrase-file={DEST}/{cluster}-passphrase.txt",
                         f"-creds-file={DEST}/{cluster}.pem"], timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"conjurer failed on {node.name}: {proc.stdout}{proc.stderr}")
        return time.monotonic() - started

    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return list(pool.map(run, nodes))


def wait_until(predicate, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError("benchmark condition not reached")
