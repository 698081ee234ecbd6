"""Waiting on a condition with a deadline: the only way tests here synchronise."""

import time


def wait_for(predicate, timeout=60, what="condition", interval=1.5):
    """Poll `predicate` until it returns something truthy, and return that. Polls are spaced
    out: most predicates run salt-run, about a CPU-second each, and on two cores a tight loop
    starves the controller being waited on."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
