"""Seconds the lab takes to boot N nodes (and its NTP node) from the cached base image, until
every node's systemd runs: what each lab test session pays first.

    sudo .venv/bin/python -m bench.lab_boot [--nodes 4] [--runs 3]
"""

import argparse
import json
import statistics
import time

from tests.labkit import Lab


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lab, samples = Lab(), []
    try:
        for _ in range(args.runs):
            started = time.monotonic()
            lab.up(args.nodes)
            samples.append(round(time.monotonic() - started, 1))
            lab.down()
    finally:
        lab.down()
    print(json.dumps({"nodes": args.nodes, "runs": samples,
                      "median_s": statistics.median(samples)}))


if __name__ == "__main__":
    main()
