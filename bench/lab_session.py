"""Shared by the benchmarks: a lab and a controller on its bridge, torn down at the end."""

import contextlib
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubesalt.master.inventory import nodes as nodes_mod
from kubesalt.master.layout import Layout
from kubesalt.master.inventory.store import Store
from tests.integration.controller import Controller
from tests.labkit import Lab

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


FOOTPRINT = """
cg=$(systemctl show -p ControlGroup --value kubesalt-minion.service)
for hierarchy in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [ -r $hierarchy$cg/cgroup.procs ] && pids=$(cat $hierarchy$cg/cgroup.procs) && break
done
echo $(du -sm /opt/kubesalt | cut -f1) $(echo $pids | wc -w)
ps -o rss= -p $(echo $pids | tr ' ' ,) | awk '{s += $1} END {print s}'
for p in $pids; do awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup; done |
    awk '{s += $1} END {print s}'
"""


def agent_footprint(node):
    """What kubesalt's agent costs a node: MB installed under /opt/kubesalt, and the resident
    memory (RSS, and PSS: shared pages counted once) of all kubesalt-minion's processes."""
    lines = node.sh(FOOTPRINT, check=True).stdout.split("\n")
    installed, processes = lines[0].split()
    return {"installed_mb": int(installed), "minion_processes": int(processes),
            "minion_rss_mb": round(int(lines[1]) / 1024, 1),
            "minion_pss_mb": round(int(lines[2]) / 1024, 1)}


def node_rows(controller, cluster, status):
    """What `node.list cluster=C status=S` lists, read in this process from the controller's
    records and key store. Polling with salt-run would cost about a second and a half of CPU
    per call (a Python starting and loading Salt), on a 2-core machine a large share of what
    the benchmark is measuring."""
    layout = Layout.for_root(controller.root)
    return nodes_mod.list_nodes(Store(layout.state_dir), layout.pki_dir, cluster=cluster,
                                status=status)


def wait_until(predicate, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError("benchmark condition not reached")
