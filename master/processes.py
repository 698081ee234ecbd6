"""Whether a process still runs; a leaf the operation machinery uses without importing Salt."""

import os


def process_alive(pid):
    """True while `pid` is a live process (a zombie left unreaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie left by a parent that has not reaped it no longer serves anything.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
