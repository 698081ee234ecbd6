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


def start_ticks(pid):
    """When `pid` started, in clock ticks since boot (/proc/PID/stat field 22), or None when
    it is gone: with the boot, what tells a process from a later one given the same pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            # fields after the command name, which may hold spaces and parentheses
            return int(handle.read().rsplit(") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _first_line(path):
    try:
        with open(path, encoding="ascii") as handle:
            return handle.readline().strip() or None
    except OSError:
        return None


def this_boot():
    """(machine id, boot id) of this host's current boot: a pid means something only on the
    machine and within the boot it was given in."""
    return (_first_line("/etc/machine-id") or _first_line("/var/lib/dbus/machine-id"),
            _first_line("/proc/sys/kernel/random/boot_id"))
