"""Median seconds from conjurer's start on a lab node to the node's key pending on the
controller (DISCOVERED), with the agent software already in the controller's store.

    sudo .venv/bin/python -m bench.conjurer_pending [--runs 5]
"""

import argparse
import json
import statistics
import threading
import time

from bench.lab_session import DEST, lab_and_controller, wait_until


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    samples = []
    with lab_and_controller(1) as (lab, controller, root):
        controller.run_ok("cluster.create", "bench", "os=debian-12")
        creds = root / "creds"
        controller.run_ok("cluster.installer", "bench", f"dest={creds}")
        for _ in range(args.runs):
            node = lab.renew()[0]
            node.push(creds, DEST)
            argv = ["python3", f"{DEST}/conjurer", "-edge-name=bench",
                    f"-passphrase-file={DEST}/bench-passphrase.txt",
                    f"-creds-file={DEST}/bench.pem"]
            started = time.monotonic()
            worker = threading.Thread(target=node.run, args=(argv,))
            worker.start()

            def pending(node=node):
                rows = controller.run_ok("node.list", "cluster=bench", "status=DISCOVERED")
                return any(r["address"] == node.address for r in rows)

            samples.append(round(wait_until(pending, 600, interval=0.3) - started, 1))
            worker.join()
            for row in controller.run_ok("node.list", "cluster=bench", "status=DISCOVERED"):
                controller.run_ok("node.reject", row["id"])
    print(json.dumps({"runs": samples, "median_s": round(statistics.median(samples), 1)}))


if __name__ == "__main__":
    main()
