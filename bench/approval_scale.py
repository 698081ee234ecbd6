"""Seconds from starting conjurer on N lab nodes at once (auto-approve on) until all N are
APPROVED, next to the same for 1 node; prints both and the ratio.

    sudo .venv/bin/python -m bench.approval_scale [--nodes 20]
"""

import argparse
import json
import threading
import time

from bench.lab_session import conjurer_on, lab_and_controller, wait_until


def measure(lab, controller, root, cluster, nodes):
    controller.run_ok("cluster.create", cluster, "os=debian-12", "auto_approve=True")
    creds = root / cluster
    controller.run_ok("cluster.installer", cluster, f"dest={creds}")
    started = time.monotonic()
    worker = threading.Thread(target=conjurer_on, args=(nodes, cluster, creds))
    worker.start()

    def all_approved():
        rows = controller.run_ok("node.list", f"cluster={cluster}", "status=APPROVED")
        return len(rows) == len(nodes)

    finished = wait_until(all_approved, 3600, interval=1.5)
    worker.join()
    return round(finished - started, 1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args()
    with lab_and_controller(args.nodes) as (lab, controller, root):
        one = measure(lab, controller, root, "one", lab.nodes[:1])
        lab.renew(lab.nodes[:1])
        many = measure(lab, controller, root, "many", lab.nodes)
    print(json.dumps({"1_node_s": one, f"{args.nodes}_nodes_s": many,
                      "ratio": round(many / one, 2)}))


if __name__ == "__main__":
    main()
