"""CPU seconds and memory of process trees, for the benchmarks: a daemon from its pidfile with
every process below it, or a list of processes with theirs."""

import contextlib
from pathlib import Path

import psutil


def tree(pids):
    """The live processes `pids` and all their descendants."""
    found = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            top = psutil.Process(pid)
            for proc in [top, *top.children(recursive=True)]:
                found[proc.pid] = proc
    return list(found.values())


def pid_from(pidfile):
    try:
        return int(Path(pidfile).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def usage(pids):
    """{"cpu_s", "rss_mb", "pss_mb", "processes"} of the trees under `pids`. CPU counts what
    the live processes spent and what their ended children did (the kernel adds a reaped
    child's time to its parent's children_* times), so short-lived workers are not lost."""
    cpu = rss = pss = 0.0
    procs = tree(pids)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            cpu += times.user + times.system + times.children_user + times.children_system
            memory = proc.memory_full_info()
            rss += memory.rss
            pss += memory.pss
    return {"cpu_s": round(cpu, 2), "rss_mb": round(rss / 2**20, 1),
            "pss_mb": round(pss / 2**20, 1), "processes": len(procs)}


def difference(after, before):
    """What grew from `before` to `after` (two usage() results)."""
    return {key: round(after[key] - before[key], 2) for key in after}
