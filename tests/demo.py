"""`make demo`: kubesalt's main job on simulated edge nodes, end to end, then torn down.

Brings up a controller on the lab bridge and a lab of 4 nodes, creates a dedicated
multi-master cluster with auto-approve, runs conjurer on every node with the three files
cluster.installer wrote, configures the nodes' roles (3 masters, 1 worker), fills the artifact
store from the lab's air-gapped source, provisions with progress streamed stage by stage, and
shows cluster.status and node.list. Exit 0 only if the cluster reached READY.

The cluster uses the `minimal` blueprint: lab nodes have no raw disks for rook-ceph. What runs
for real and what is a lab stand-in is printed before provisioning.
"""

import json
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.integration.controller import BIN, Controller
from tests.labkit import Lab
from tests.labkit import artifacts as lab_artifacts
from tests.waiting import wait_for

CLUSTER = "demo"
DEST = "/root/kubesalt"


def say(text):
    print(f"\n=== {text}", flush=True)


def show(data):
    print(json.dumps(data, indent=2, sort_keys=True), flush=True)



def main():
    lab = Lab()
    root = Path(tempfile.mkdtemp(prefix="ksdemo-"))
    controller = None
    try:
        say("Booting 4 lab nodes (systemd-nspawn, Debian 12) on bridge 10.77.0.1/24")
        lab.up(4)
        for node in lab.nodes:
            print(f"  {node.name}  {node.address}")
        say("Starting the controller (salt-master + kubesalt) on 10.77.0.1")
        controller = Controller(root, interface=lab.bridge_address)
        show(controller.start_for_lab(lab))
        say(f"salt-run cluster.create {CLUSTER} ha=True dedicated_master=True "
            "auto_approve=True os=debian-12 blueprint=minimal")
        created = controller.run_ok("cluster.create", CLUSTER, "ha=True",
                                    "dedicated_master=True", "auto_approve=True",
                                    "os=debian-12", "blueprint=minimal")
        print(f"  type: {created['type']}, nodes needed: {created['nodes_required']}")
        creds = root / "creds"
        say(f"salt-run cluster.installer {CLUSTER} dest={creds}")
        installer = controller.run_ok("cluster.installer", CLUSTER, f"dest={creds}")
        print(f"  on each node: {installer['command']}")

        def bootstrap(node):
            node.push(creds, DEST)
            return node.run(["python3", f"{DEST}/conjurer", f"-edge-name={CLUSTER}",
                             f"-passphrase-file={DEST}/{CLUSTER}-passphrase.txt",
                             f"-creds-file={DEST}/{CLUSTER}.pem"], timeout=600)

        say("Running conjurer on every node")
        with ThreadPoolExecutor(max_workers=4) as pool:
            for node, proc in zip(lab.nodes, pool.map(bootstrap, lab.nodes), strict=True):
                print(f"--- {node.name} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}")
                if proc.returncode != 0:
                    raise RuntimeError(f"conjurer failed on {node.name}")
        say("Waiting for auto-approval and the nodes' facts")

        def probed():
            rows = controller.run_ok("node.list", f"cluster={CLUSTER}")
            if len(rows) != 4 or {r["status"] for r in rows} != {"APPROVED"}:
                return None
            shown = [controller.run_ok("node.show", r["id"]) for r in rows]
            return shown if all(s.get("facts", {}).get("kubesalt_interfaces")
                                for s in shown) else None

        nodes = sorted(wait_for(probed, 180, "4 approved, probed nodes"), key=lambda n: n["id"])
        say("Configuring roles: 3 masters, 1 worker")
        for index, node in enumerate(nodes):
            roles = "master" if index < 3 else "worker"
            out = controller.run_ok("node.configure", node["id"], f"roles={roles}",
                                    "interface=host0")
            print(f"  {node['id']}: {out['config']['roles']} on {out['config']['address']}")
        say(f"salt-run cluster.show {CLUSTER}")
        shown = controller.run_ok("cluster.show", CLUSTER)
        print(f"  {shown['name']}: {shown['type']}, Kubernetes {shown['k8s_version']}, "
              f"{shown['cni']}, pods {shown['pod_subnet']}, services {shown['service_subnet']}")
        source = root / "artifact-source"
        say(f"Artifact store: salt-run artifacts.sync {shown['k8s_version']} source={source}")
        lab_artifacts.build(source, shown["k8s_version"])
        for kind, names in lab_artifacts.describe().items():
            print(f"  {kind}: {', '.join(names)}")
        synced = controller.run_ok("artifacts.sync", shown["k8s_version"], f"source={source}")
        print(f"  {len(synced['artifacts'])} files in the store, sha256 recorded")
        say(f"salt-run cluster.provision {CLUSTER} wait=True")
        proc = subprocess.run([str(BIN / "salt-run"), "-c", str(controller.conf_dir),
                               "cluster.provision", CLUSTER, "wait=True",
                               "timeout=1800"], timeout=2000, check=False)
        say(f"salt-run cluster.status {CLUSTER}")
        status = controller.run_ok("cluster.status", CLUSTER)
        op = status["operation"]
        for stage in op["stages"]:
            took = "" if stage["duration_s"] is None else f"{stage['duration_s']}s"
            print(f"  {stage['stage']:20} {stage['state']:8} {took:>7}  "
                  f"{stage['error'] or ', '.join(stage['nodes'])}")
        say(f"salt-run node.list cluster={CLUSTER}")
        for row in controller.run_ok("node.list", f"cluster={CLUSTER}"):
            print(f"  {row['id']:40} {row['status']:10} {row['address']:12} "
                  f"{','.join(row['config']['roles'])}")
        if status["state"] != "READY" or proc.returncode != 0:
            raise RuntimeError(f"the cluster is {status['state']}: {op['error']}")
        say(f"Cluster {CLUSTER} is READY")
        print(f"  provisioning took {op['duration_s']} s (operation {op['operation']}, "
              f"{op['started']} to {op['finished']})")
        return 0
    except Exception as exc:  # noqa: BLE001 - the demo reports and fails
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        say("Tearing down")
        if controller is not None:
            controller.stop()
        lab.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
