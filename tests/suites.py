"""`make test`'s runner: the lab tests (tests/e2e) and every other test as two pytest runs side
by side; on two cores the pair ends well before the two would one after the other (the
figures: bench/README.md, "The test suite").

The other tests print as they run; the lab tests' output is kept in a file and printed once
they end (or followed live once the others are done). Exits non-zero when either run failed.

    python -m tests.suites [pytest arguments for both runs]
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

LAB_TESTS = "tests/e2e"


def _pytest(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "pytest", *args],  # noqa: S603
                            stdin=subprocess.DEVNULL, **kwargs)


def _follow(path, offset, until_done):
    """Copy `path` to stdout from `offset` on until `until_done()` and the end is reached."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            done = until_done()
            chunk = handle.read()
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            elif done:
                return
            else:
                time.sleep(1)


def _stop_on_term(runs):
    """make or CI stopping this runner stops both pytest runs (and, through their fixtures,
    what they started) instead of leaving them behind."""
    def stop(signum, _frame):
        for run in runs:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)
        for run in runs:
            run.wait()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def main(extra):
    with tempfile.NamedTemporaryFile(prefix="kubesalt-lab-tests-", suffix=".log",
                                     delete=False) as log:
        # unbuffered: its file is followed live once the others end
        lab = _pytest(["-q", LAB_TESTS, *extra], stdout=log, stderr=subprocess.STDOUT,
                      env=dict(os.environ, PYTHONUNBUFFERED="1"))
        runs = [lab]
        _stop_on_term(runs)
        print(f"lab tests ({LAB_TESTS}) running beside the others; their output: {log.name}",
              flush=True)
        runs.append(_pytest(["-q", "tests", f"--ignore={LAB_TESTS}", *extra]))
        rest = runs[-1].wait()
        state = "" if lab.poll() is not None else ", still running"
        print(f"\n--- lab tests ({LAB_TESTS}){state} ---", flush=True)
        _follow(log.name, 0, lambda: lab.poll() is not None)
    os.unlink(log.name)
    print(f"\nother tests: {'passed' if rest == 0 else 'FAILED'}; lab tests: "
          f"{'passed' if lab.returncode == 0 else 'FAILED'}", flush=True)
    return 0 if rest == 0 and lab.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
