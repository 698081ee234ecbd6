"""The controller with a fleet: N simulated nodes (real salt-minion processes on loopback, each
with its own id and key pair, enrolled through the endpoint with real installer credentials by
conjurer's own code, auto-approved) onboarded onto one real controller (salt-master with the
endpoint and kubesalt's engines, salt-api), and what that costs it.

No lab and no nspawn: the controller and the minions run on this machine's loopback, as the
integration tests run them.

    .venv/bin/python -m bench.controller_scale [--nodes 200] [--window 20]

Phases, each measured on its own:
1. `salt-run node.list` with no nodes.
2. Enrollment: every node's installer check and signed enrollment, `--concurrency` at a time;
   nodes APPROVED per minute (auto-approve answers APPROVED when the key is stored).
3. Onboarding, at most `--window` nodes starting at once: their minions start, connect and are
   probed by the controller (the reactor's node.probe: modules synced, facts cached); nodes
   onboarded per minute.
4. `--idle` seconds of the fleet connected and idle (the health engine pings every node each
   15 s): the controller's steady CPU.
5. A test.ping round trip to all nodes (`--pings` times, in-process LocalClient against the
   controller's configuration), then `salt-run node.list` with N nodes.

The controller's CPU seconds and memory (RSS and PSS) are taken over its process trees,
salt-master (with the endpoint and engines in it) and salt-api, between the phases. Prints
a readable summary, then the results as one JSON line (the last line). Everything started
is ended at the end, on failure and on Ctrl-C.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import salt.client

from bench import process_usage
from bench.bus_watch import BusWatch
from bench.lab_session import node_rows
from bench.loopback_fleet import LoopbackFleet
from kubesalt.minion_bootstrap import facts as facts_mod
from kubesalt.minion_bootstrap import prechecks
from kubesalt.master.layout import Layout
from tests.integration.controller import BIN, _env, running

CLUSTER = "scale"
NODE_TIMEOUT = 600
PING_TIMEOUT = 120


_BEGAN = time.monotonic()


def say(line):
    print(f"[controller_scale {time.monotonic() - _BEGAN:6.1f} s] {line}", file=sys.stderr,
          flush=True)


class Interrupted(Exception):
    pass


def _interrupt(signum, _frame):
    raise Interrupted(f"signal {signum}")


def timed_node_list(ctl, runs):
    """Seconds of each `salt-run node.list` (the whole command, as an operator waits for it)
    and the rows the last one listed."""
    seconds, rows = [], None
    for _ in range(runs):
        started = time.monotonic()
        proc = subprocess.run([str(BIN / "salt-run"), "-c", str(ctl.conf_dir), "--out=json",
                               "node.list"], capture_output=True, text=True, timeout=600,
                              env=_env(), stdin=subprocess.DEVNULL, check=False)
        seconds.append(round(time.monotonic() - started, 2))
        if proc.returncode != 0:
            raise RuntimeError(f"salt-run node.list failed: {proc.stdout}{proc.stderr}")
        rows = len(json.loads(proc.stdout))
    return {"median_s": statistics.median(seconds), "runs_s": seconds, "rows": rows}


def pings(master_conf, target, count, runs):
    """Wall seconds of each test.ping round trip to `target` (returns from every node, or
    the timeout), and how many nodes answered True each time."""
    seconds, answered = [], []
    with salt.client.get_local_client(str(master_conf)) as client:
        for _ in range(runs):
            started = time.monotonic()
            returns = client.cmd(target, "test.ping", timeout=PING_TIMEOUT)
            seconds.append(round(time.monotonic() - started, 2))
            answered.append(sum(1 for value in returns.values() if value is True))
    return {"median_s": statistics.median(seconds), "runs_s": seconds, "answered": answered,
            "expected": count}


class Controller:
    """The controller's daemons' usage, sampled between phases."""

    def __init__(self, layout):
        self.layout = layout

    def sample(self):
        master = process_usage.pid_from(self.layout.pidfile)
        api = process_usage.pid_from(self.layout.api_pidfile)
        return {"salt-master": process_usage.usage([master]),
                "salt-api": process_usage.usage([api])}


def enroll(fleet, node_ids, concurrency):
    """Phase 2; returns the results part and the seconds it took."""
    facts = facts_mod.gather(prechecks.Context())  # what conjurer on this machine reports
    started = time.monotonic()
    answers = fleet.enroll_all(node_ids, facts, concurrency)
    took = time.monotonic() - started
    refused = {node_id: status for node_id, (status, _) in answers.items()
               if status != "APPROVED"}
    for node_id, status in list(refused.items())[:5]:
        say(f"{node_id}: {status}")
    return {"answered_approved": len(node_ids) - len(refused),
            "seconds": round(took, 1),
            "request_s_median": round(statistics.median(s for _, s in answers.values()), 3)}


def onboard(fleet, watch, node_ids, window, daemons):
    """Phase 3: start the minions, at most `window` of them starting at once (started, and
    neither probed nor failed to be); a node not probed within NODE_TIMEOUT gives its place
    up and is reported. Returns the results part, with the daemons' usage after every
    `window` nodes settled (how it grows)."""
    started = time.monotonic()
    waiting, in_flight, stuck, growth = list(node_ids), set(), set(), []
    settled = ("probed", "probe_failed")
    while waiting or in_flight:
        room = window - len(in_flight)
        batch, waiting = waiting[:room], waiting[room:]
        fleet.start(batch)
        in_flight |= set(batch)
        oldest = min(fleet.started_at[node] for node in in_flight)
        in_flight -= watch.wait_any(settled, in_flight,
                                    oldest + NODE_TIMEOUT - time.monotonic(),
                                    give_up=fleet.exited)
        if fleet.exited():
            raise RuntimeError(f"minions exited: {fleet.exited()}")
        late = {node for node in in_flight
                if time.monotonic() - fleet.started_at[node] >= NODE_TIMEOUT}
        stuck, in_flight = stuck | late, in_flight - late
        done = len(node_ids) - len(waiting) - len(in_flight)
        if done - (growth[-1]["nodes"] if growth else 0) >= window or \
                not (waiting or in_flight):
            growth.append({"nodes": done, **daemons.sample()})
            say(f"{len(fleet.minions)}/{len(node_ids)} minions started, "
                f"{len(watch.times('probed'))} probed, "
                f"{len(watch.probe_failures)} failed to be, {len(stuck)} silent, "
                f"{time.monotonic() - started:.0f} s")
    probed, connected = watch.times("probed"), watch.times("started")
    last = max(probed.values(), default=started)
    return {"connected": len(connected), "probed": len(probed), "not_probed": sorted(stuck),
            "probe_failed": dict(sorted(watch.probe_failures.items())),
            "seconds": round(last - started, 1),
            "start_to_connected_s_median": _median_gap(fleet.started_at, connected),
            "connected_to_probed_s_median": _median_gap(connected, probed),
            "growth": growth}


def _median_gap(earlier, later):
    """Median seconds from `earlier` to `later` over the nodes that have both."""
    gaps = [later[node] - earlier[node] for node in later if node in earlier]
    return round(statistics.median(gaps), 2) if gaps else None


def _files_under(directory):
    """Files in Salt's job cache: every job's returns, one file per node, kept 24 hours."""
    return sum(len(files) for _, _, files in os.walk(directory))


def per_100(value, nodes):
    return round(value * 100 / nodes, 2)


def measure(ctl, base, options):
    layout = Layout.for_root(ctl.root)
    daemons = Controller(layout)
    ctl.run_ok("cluster.create", CLUSTER, "auto_approve=True")
    creds = base / "creds"
    ctl.run_ok("cluster.installer", CLUSTER, f"dest={creds}")
    result = {"nodes": options.nodes, "window": options.window}
    result["node_list_0"] = timed_node_list(ctl, options.list_runs)
    fleet = LoopbackFleet(base / "n", CLUSTER,
                          (creds / f"{CLUSTER}.pem").read_text(),
                          (creds / f"{CLUSTER}-passphrase.txt").read_text().strip())
    node_ids = [fleet.node_id(number) for number in range(1, options.nodes + 1)]
    try:
        say(f"making {options.nodes} key pairs")
        fleet.make_keys(node_ids)
        usage = {"0_nodes": daemons.sample()}
        with BusWatch(layout.master_conf) as watch:
            say("enrolling")
            result["enroll"] = enroll(fleet, node_ids, options.concurrency)
            result["enroll"]["approved"] = len(node_rows(ctl, CLUSTER, "APPROVED"))
            result["approved_per_min"] = round(
                result["enroll"]["approved"] * 60 / max(result["enroll"]["seconds"], 0.01), 1)
            usage["enrolled"] = daemons.sample()
            say(f"onboarding, {options.window} minions starting at once")
            result["onboard"] = onboard(fleet, watch, node_ids, options.window, daemons)
            result["ready_per_min"] = round(
                result["onboard"]["probed"] * 60 / max(result["onboard"]["seconds"], 0.01), 1)
            usage["onboarded"] = daemons.sample()
        say(f"{options.idle} s idle")
        time.sleep(options.idle)  # a measurement window, not a synchronisation
        usage["idle"] = daemons.sample()
        result["job_cache_files"] = _files_under(layout.master_cachedir / "jobs")
        minions = process_usage.usage(fleet.pids())
        result["minions"] = dict(minions, pss_mb_each=round(minions["pss_mb"] / options.nodes, 1),
                                 cpu_s_each=round(minions["cpu_s"] / options.nodes, 2))
        say("test.ping round trips")
        result["ping"] = pings(layout.master_conf, f"*-{CLUSTER}", options.nodes,
                               options.pings)
        result["node_list_n"] = timed_node_list(ctl, options.list_runs)
    finally:
        say("stopping the minions")
        fleet.stop()
    result["controller"] = costs(usage, result["onboard"]["growth"], options)
    return result


def costs(usage, growth, options):
    """The controller's daemons' CPU and memory by phase, and per 100 nodes: over the whole
    run, and at the margin (from the first sample of the growth to the last: what one more node
    adds once the one-time costs, the first runner and reactor warm-up, are paid)."""
    found = {}
    for daemon in ("salt-master", "salt-api"):
        at = {phase: sample[daemon] for phase, sample in usage.items()}
        first, last = growth[0], growth[-1]
        added = last["nodes"] - first["nodes"]
        enroll_cpu = at["enrolled"]["cpu_s"] - at["0_nodes"]["cpu_s"]
        onboard_cpu = at["onboarded"]["cpu_s"] - at["enrolled"]["cpu_s"]
        idle_cpu = at["idle"]["cpu_s"] - at["onboarded"]["cpu_s"]
        found[daemon] = {
            "processes": at["idle"]["processes"],
            "cpu_s_enroll": round(enroll_cpu, 1),
            "cpu_s_onboard": round(onboard_cpu, 1),
            "cpu_s_per_100_nodes": per_100(enroll_cpu + onboard_cpu, options.nodes),
            "idle_cpu_pct": round(idle_cpu * 100 / options.idle, 1) if options.idle else None,
            "rss_mb_0": at["0_nodes"]["rss_mb"], "rss_mb_n": at["idle"]["rss_mb"],
            "pss_mb_0": at["0_nodes"]["pss_mb"], "pss_mb_n": at["idle"]["pss_mb"],
            "rss_mb_per_100_nodes": per_100(at["idle"]["rss_mb"] - at["0_nodes"]["rss_mb"],
                                            options.nodes),
            "pss_mb_per_100_nodes": per_100(at["idle"]["pss_mb"] - at["0_nodes"]["pss_mb"],
                                            options.nodes),
            "marginal_cpu_s_per_100_nodes": per_100(
                last[daemon]["cpu_s"] - first[daemon]["cpu_s"], added) if added else None,
            "marginal_pss_mb_per_100_nodes": per_100(
                last[daemon]["pss_mb"] - first[daemon]["pss_mb"], added) if added else None,
        }
    return found


SUMMARY = """\
controller scale, {nodes} nodes on loopback ({window} starting at once)
  enrollment: {enroll[approved]} APPROVED in {enroll[seconds]} s = {approved_per_min}/min \
(median request {enroll[request_s_median]} s)
  onboarding: {onboard[connected]} connected, {onboard[probed]} probed \
({failed} probes failed, {silent} nodes silent) in \
{onboard[seconds]} s = {ready_per_min}/min (median per node: start to connected \
{onboard[start_to_connected_s_median]} s, connected to probed \
{onboard[connected_to_probed_s_median]} s)
  test.ping to all: median {ping[median_s]} s ({ping[runs_s]}), answered {ping[answered]}
  salt-run node.list: {node_list_0[median_s]} s with 0 nodes, {node_list_n[median_s]} s \
with {node_list_n[rows]} rows
  Salt's job cache after the idle time: {job_cache_files} files
  minions: {minions[processes]} processes, {minions[pss_mb_each]} MB PSS and \
{minions[cpu_s_each]} CPU-s each"""

DAEMON_LINE = """\
  {name}: CPU {cpu_s_enroll} s enrolling + {cpu_s_onboard} s onboarding = \
{cpu_s_per_100_nodes} s per 100 nodes (at the margin \
{marginal_cpu_s_per_100_nodes}); idle {idle_cpu_pct}% of a core; \
PSS {pss_mb_0} -> {pss_mb_n} MB ({pss_mb_per_100_nodes} per 100 nodes, at the margin \
{marginal_pss_mb_per_100_nodes}), RSS {rss_mb_0} -> {rss_mb_n} MB"""


def summary(result):
    lines = [SUMMARY.format(failed=len(result["onboard"]["probe_failed"]),
                            silent=len(result["onboard"]["not_probed"]), **result)]
    lines += [DAEMON_LINE.format(name=name, **figures)
              for name, figures in result["controller"].items()]
    return "\n".join(lines)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--window", type=int, default=20,
                        help="minions starting at once: started, not yet probed (default 20)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="enrollments in flight at once (default 16; the endpoint "
                             "holds 32 connections per client address)")
    parser.add_argument("--idle", type=float, default=60,
                        help="seconds the connected fleet is left idle (default 60)")
    parser.add_argument("--pings", type=int, default=3)
    parser.add_argument("--list-runs", type=int, default=3)
    options = parser.parse_args(argv)
    for name in ("nodes", "window", "concurrency", "pings", "list_runs"):
        if getattr(options, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if options.idle < 0:
        parser.error("--idle must not be negative")
    return options


def main(argv=None):
    options = parse(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    # Short: the minions' and the master's IPC socket paths live below it.
    base = Path(tempfile.mkdtemp(prefix="kscale-"))
    try:
        say("starting the controller")
        with running("kscale-ctl-") as ctl:
            result = measure(ctl, base, options)
    except (KeyboardInterrupt, Interrupted) as exc:
        say(f"interrupted ({str(exc) or 'Ctrl-C'}); everything it started is stopped")
        return 130
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(summary(result))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
