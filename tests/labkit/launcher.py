"""A lab node's power supply: runs systemd-nspawn for one node and boots it again when the
node reboots itself.

    python3 launcher.py CGROUP... -- systemd-nspawn ARGS...

There is no host systemd here to restart a machine that asked for a reboot (nspawn exits
133 then, which systemd-nspawn@.service turns into a restart through RestartForceExitStatus),
so this process does that: it joins the node's cgroups, runs nspawn, and runs it again on exit
status 133 only. SIGTERM or SIGINT means "shut the node down": passed on to nspawn (an orderly
shutdown) and never followed by another boot. Exits with nspawn's last status.
"""

import os
import signal
import sys

REBOOT_STATUS = 133
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
WATCHED = {*STOP_SIGNALS, signal.SIGCHLD}
# What nspawn sends a booted machine's systemd on SIGTERM or SIGINT (its default --kill-signal)
HALT = signal.SIGRTMIN + 3
HALT_REPEAT_SECONDS = 1.0


def wait_exit(child):
    """Wait for nspawn to exit, passing stop signals on; returns (its status, stopping)."""
    stopping = False
    while True:
        info = (signal.sigtimedwait(WATCHED, HALT_REPEAT_SECONDS) if stopping
                else signal.sigwaitinfo(WATCHED))
        if info is None:
            # The kernel drops a signal to a namespace's init that has no handler for it
            # yet: a halt sent in the first instants of a boot is lost, and nspawn does not
            # send another. Asking again is harmless to a systemd already halting.
            halt_init(child)
            continue
        signum = info.si_signo
        if signum in STOP_SIGNALS:
            stopping = True
            os.kill(child, signum)  # not reaped before it is waited for below: still ours
            continue
        pid, wait_status = os.waitpid(child, os.WNOHANG)
        if pid:
            return os.waitstatus_to_exitcode(wait_status), stopping


def halt_init(nspawn):
    for init in children(nspawn):
        try:
            with open(f"/proc/{init}/comm") as comm:
                if comm.read().strip() == "systemd":
                    os.kill(init, HALT)
        except OSError:  # gone meanwhile
            continue


def children(pid):
    """PIDs of pid's children (of all its threads)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found.extend(int(c) for c in handle.read().split())
    except OSError:
        pass
    return found


def run(argv):
    # Every signal this process acts on is taken synchronously (sigwaitinfo), never by a
    # handler: a stop arriving between two boots is then seen before the next boot, not
    # after it, so `down` cannot race a reboot.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    while True:
        # nspawn starts with no signal blocked, whatever this process holds
        child = os.posix_spawnp(argv[0], argv, os.environ, setsigmask=())
        status, stopping = wait_exit(child)
        if status != REBOOT_STATUS or stopping or pending_stop():
            return status if status >= 0 else 128 - status
        print(f"lab launcher: the node asked for a reboot (nspawn exited {status}): "
              "booting it again", flush=True)


def pending_stop():
    return bool(signal.sigpending() & set(STOP_SIGNALS))


def join_cgroups(cgroups):
    for cgroup in cgroups:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
            procs.write(str(os.getpid()))


def main(argv):
    split = argv.index("--")
    join_cgroups(argv[:split])
    return run(argv[split + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
