"""Starts, stops and inspects the controller's daemons: salt-master and salt-api (the REST
API, when `kubesalt-controller init` configured it)."""

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import psutil
import salt.utils.crypt

from kubesalt.master.controller import config
from kubesalt.master.ops import executor, lease
from kubesalt.master.processes import process_alive
from kubesalt.master.inventory import storage
from kubesalt.master.inventory import store as store_mod

START_TIMEOUT = 60
STOP_TIMEOUT = 30
# How long processes of ours left without their main process get to exit on SIGTERM.
ORPHAN_GRACE = 5
# How long `stop` lets this controller's salt-run processes finish on their own: one following
# an operation returns within a second or two of the operation being recorded as interrupted,
# and a short runner (cluster.create, node.list) ends by itself.
RUNNER_GRACE = 10

MASTER, API, RUNNER = "salt-master", "salt-api", "salt-run"
RUNNER_ENDED = ("kubesalt-controller stop: the controller stopped while this salt-run (pid {pid}) "
                "was running; it was ended\n")


class ControllerError(RuntimeError):
    pass


def salt_script(name):
    """The Salt command installed beside this Python, so the venv's Salt is always used."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise ControllerError(f"{name} is not installed; install kubesalt with pip first")
    return found


def read_pid(layout, pidfile=None):
    """The pid in the daemon's pidfile while that process lives and is this controller's
    salt-master (or salt-api): after a kill -9 the pidfile stays, and its pid may be reused."""
    pidfile = Path(pidfile or layout.pidfile)
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    program = API if pidfile == Path(layout.api_pidfile) else MASTER
    try:
        if not _is_ours(psutil.Process(pid), layout, (program,)):
            return None
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        pass  # cannot tell; the pidfile is all there is
    return pid


def _config_dir_of(proc, argv):
    """The configuration directory a Salt command runs with: -c/--config-dir, else
    $SALT_CONFIG_DIR, else /etc/salt (Salt's own order); relative to the process's cwd."""
    found = None
    for i, arg in enumerate(argv):
        if arg in ("-c", "--config-dir") and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--config-dir="):
            found = arg.split("=", 1)[1]
        elif arg.startswith("-c") and not arg.startswith("--") and len(arg) > 2:
            found = arg[2:]
    if found is None:
        try:
            found = proc.environ().get("SALT_CONFIG_DIR") or "/etc/salt"
        except (psutil.AccessDenied, psutil.ZombieProcess):
            found = "/etc/salt"
    if not os.path.isabs(found):
        found = os.path.join(proc.cwd(), found)
    return os.path.realpath(found)


def _is_ours(proc, layout, programs):
    """Is `proc` one of `programs` (salt-master, salt-api, salt-run) run with this
    controller's configuration directory? Raises psutil's AccessDenied/NoSuchProcess."""
    argv = proc.cmdline()
    if not argv:
        return False
    # `python .../salt-run ...` (a venv's entry point run by its interpreter) or `salt-run ...`
    if os.path.basename(argv[0]) in programs:
        rest = argv[1:]
    elif len(argv) > 1 and os.path.basename(argv[1]) in programs and \
            "python" in os.path.basename(argv[0]):
        rest = argv[2:]
    else:
        return False
    return _config_dir_of(proc, rest) == os.path.realpath(layout.conf_dir)


def controller_processes(layout, programs):
    """Live processes of `programs` run with this controller's configuration directory,
    never this process or one it runs under."""
    spared = {os.getpid()} | {p.pid for p in psutil.Process().parents()}
    found = []
    for proc in psutil.process_iter():
        if proc.pid in spared:
            continue
        try:
            if _is_ours(proc, layout, programs) and _alive(proc):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess,
                FileNotFoundError):
            continue
    return found


def _alive(proc):
    """psutil's identity check (pid and start time), so a reused pid is not mistaken for the
    process; a zombie serves nothing."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(procs, timeout):
    """Wait until every one of `procs` has exited; returns those still alive at `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in procs if _alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def _signal(procs, signum):
    for proc in procs:
        try:
            proc.send_signal(signum)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def _end(procs, grace):
    """SIGTERM, then SIGKILL whatever is left after `grace` seconds; returns their pids."""
    _signal(procs, signal.SIGTERM)
    left = _wait_gone(procs, grace)
    if left:
        _signal(left, signal.SIGKILL)
        left = _wait_gone(left, STOP_TIMEOUT)
    if left:
        raise ControllerError(f"processes {sorted(p.pid for p in left)} of this controller "
                              "survived SIGKILL")
    return sorted(p.pid for p in procs)


def orphans(layout, program):
    """`program`'s processes of this controller while its main process is not running: what
    a kill -9 of the main process leaves behind, still holding its ports."""
    pidfile = layout.api_pidfile if program == API else layout.pidfile
    if read_pid(layout, pidfile) is not None:
        return []
    found = controller_processes(layout, (program,))
    return found + _session_mates(found)


def _session_mates(procs):
    """The other processes of `procs`' sessions: Salt renames some children (EventPublisher)
    and their command line no longer names the configuration. A daemon (-d, or a systemd
    service) leads its own session; one whose leader lives on and is not among `procs` is
    someone's shell, whose other processes are not ours."""
    known = {p.pid for p in procs}
    sessions = set()
    for proc in procs:
        try:
            sid = os.getsid(proc.pid)
        except OSError:
            continue
        if sid in known or not psutil.pid_exists(sid):
            sessions.add(sid)
    sessions.discard(os.getsid(0))
    if not sessions:
        return []
    spared = known | {os.getpid()} | {p.pid for p in psutil.Process().parents()}
    mates = []
    for proc in psutil.process_iter():
        try:
            if proc.pid not in spared and os.getsid(proc.pid) in sessions and _alive(proc):
                mates.append(proc)
        except (OSError, psutil.NoSuchProcess):
            continue
    return mates


def end_orphans(layout, program):
    """End `program`'s orphans (see `orphans`); returns their pids."""
    found = orphans(layout, program)
    return _end(found, ORPHAN_GRACE) if found else []


def _port_open(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise ControllerError(f"timed out after {timeout}s waiting for {what}")


def fingerprint(layout):
    return salt.utils.crypt.pem_finger(str(layout.master_pub), sum_type="sha256") or None


def _local_host(settings):
    host = settings["interface"]
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def api_enabled(layout):
    return layout.api_conf.exists()


def api_answering(layout, settings):
    """Does the REST API answer GET / over HTTPS with a certificate of the controller CA?"""
    if not settings.get("api_port"):
        return False
    context = ssl.create_default_context(cafile=str(layout.kubesalt_pki / "ca.crt"))
    conn = http.client.HTTPSConnection(_local_host(settings), int(settings["api_port"]),
                                       context=context, timeout=2)
    try:
        conn.request("GET", "/", headers={"Accept": "application/json"})
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _answering(layout, settings):
    host = _local_host(settings)
    return (
        read_pid(layout) is not None
        and layout.master_pub.exists()
        and (layout.sock_dir / "master_event_pub.ipc").exists()
        and _port_open(host, settings["ret_port"])
        and _port_open(host, settings["publish_port"])
        and _port_open(host, settings["https_port"])
    )


def start(layout, spawn=True):
    """Start the daemons that are not running (spawn=False: systemd starts them; only wait)
    and return once the master and, when configured, the REST API answer."""
    settings = config.read_settings(layout)
    if not settings:
        raise ControllerError(f"no controller configuration in {layout.conf_dir}; run "
                              "kubesalt-controller init first")
    if spawn and read_pid(layout) is None:
        end_orphans(layout, MASTER)
        subprocess.run(
            [salt_script("salt-master"), "-c", str(layout.conf_dir), "-d"],
            check=True, stdin=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _answering(layout, settings), START_TIMEOUT,
                  f"salt-master to answer on {settings['interface']}:{settings['ret_port']}")
    except ControllerError as exc:
        raise ControllerError(f"{exc}; see {layout.log_file}") from None
    # With external_auth configured, the master adds o+x to its cachedir at start (for
    # non-root `salt` CLI users' key files, which kubesalt has none of); below it are the job
    # cache (every runner's arguments) and the minion data cache (pillar with cluster CAs).
    config.make_private_dirs(layout)
    if api_enabled(layout):
        start_api(layout, settings, spawn)
    return status(layout)


def start_api(layout, settings, spawn=True):
    """Start salt-api (once the master answers: its logins and calls go to the master) and
    wait until the API answers over HTTPS."""
    if spawn and read_pid(layout, layout.api_pidfile) is None:
        end_orphans(layout, API)
        subprocess.run(
            [salt_script("salt-api"), "-c", str(layout.conf_dir), "-d"],
            check=True, stdin=subprocess.DEVNULL)
    try:
        _wait_for(lambda: api_answering(layout, settings), START_TIMEOUT,
                  f"salt-api to answer on https://{_local_host(settings)}:"
                  f"{settings.get('api_port')}")
    except ControllerError as exc:
        raise ControllerError(f"{exc}; see {layout.api_log_file}") from None


def _stop_daemon(layout, program):
    """SIGTERM the daemon's main process (SIGKILL its process group after STOP_TIMEOUT), then
    end any of its processes left over. True if anything of it was running."""
    pidfile = layout.api_pidfile if program == API else layout.pidfile
    pid = read_pid(layout, pidfile)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        try:
            _wait_for(lambda: read_pid(layout, pidfile) is None and not process_alive(pid),
                      STOP_TIMEOUT, f"{program} (pid {pid}) to exit")
        except ControllerError:
            _kill_group(pid, program)
    return bool(end_orphans(layout, program)) or pid is not None


def interrupt_operations(layout):
    """End every operation's executor and record the operation as interrupted."""
    if storage.exists(layout.state_dir):
        executor.interrupt_running(store_mod.Store(layout.state_dir), lease.alive,
                                   lambda pid: _kill_group(pid, "operation process"))


def end_runners(layout, grace=RUNNER_GRACE):
    """Wait up to `grace` seconds for this controller's salt-run processes to end, then end
    the rest; returns the pids ended. They are killed outright, after a note on their
    stderr: Salt's SIGTERM handler raises SystemExit inside the runner, which salt-run prints
    as "Exception occurred in runner ...: Traceback", and a salt-run whose master is gone
    retries for 90 s and then prints tracebacks too."""
    ended = []
    for proc in _wait_gone(controller_processes(layout, (RUNNER,)), grace):
        _tell(proc, RUNNER_ENDED.format(pid=proc.pid))
        try:
            descendants = proc.children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        _signal([proc, *descendants], signal.SIGKILL)
        ended.extend([proc, *descendants])
    left = _wait_gone(ended, STOP_TIMEOUT)
    if left:
        raise ControllerError(f"salt-run processes {sorted(p.pid for p in left)} survived "
                              "SIGKILL")
    return sorted(p.pid for p in ended)


def _tell(proc, message):
    """Write `message` to the process's stderr, so whoever started it learns why it ended.
    Non-blocking: a full pipe or one nobody reads loses the message, never stalls `stop`."""
    try:
        fd = os.open(f"/proc/{proc.pid}/fd/2", os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, message.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def stop(layout):
    """Stop salt-api, running operations (recorded as interrupted), this controller's salt-run
    processes (while the master still answers, so those following an operation report its
    interruption and exit), then the master. True if the master was running."""
    _stop_daemon(layout, API)
    interrupt_operations(layout)
    end_runners(layout)
    stopped = _stop_daemon(layout, MASTER)
    # one started while the master went down would wait 90 s for it and end in tracebacks
    end_runners(layout, grace=0)
    return stopped


def _kill_group(pid, what):
    """SIGKILL `pid`'s process group (a daemon or an operation executor leads its own, so
    whatever it started goes too) and wait until it is gone."""
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        return
    _wait_for(lambda: not process_alive(pid), STOP_TIMEOUT, f"{what} (pid {pid}) to die")


def status(layout):
    settings = config.read_settings(layout)
    pid = read_pid(layout)
    left = sorted(p.pid for program in (MASTER, API) for p in orphans(layout, program))
    result = {
        "running": pid is not None,
        "orphans": left,
        "pid": pid,
        "config_dir": str(layout.conf_dir),
        "interface": settings.get("interface"),
        "publish_port": settings.get("publish_port"),
        "ret_port": settings.get("ret_port"),
        "https_port": settings.get("https_port"),
        "api_port": settings.get("api_port") if api_enabled(layout) else None,
        "api_running": read_pid(layout, layout.api_pidfile) is not None,
        "api_pid": read_pid(layout, layout.api_pidfile),
        "advertise": settings.get("advertise"),
        "master_fingerprint": fingerprint(layout),
    }
    if left:
        result["hint"] = ("these processes of this controller run without their main salt-master "
                          "or salt-api process and may hold its ports; kubesalt-controller stop "
                          "or start ends them")
    return result
