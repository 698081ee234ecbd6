"""Starts, stops and inspects the controller's salt-master daemon."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import salt.utils.crypt

from . import config

START_TIMEOUT = 60
STOP_TIMEOUT = 30


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


def read_pid(layout):
    try:
        pid = int(Path(layout.pidfile).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


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


def _answering(layout, settings):
    host = settings["interface"]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return (
        read_pid(layout) is not None
        and layout.master_pub.exists()
        and (layout.sock_dir / "master_event_pub.ipc").exists()
        and _port_open(host, settings["ret_port"])
        and _port_open(host, settings["publish_port"])
        and _port_open(host, settings["https_port"])
    )


def start(layout):
    settings = config.read_settings(layout)
    if not settings:
        raise ControllerError(f"no controller configuration in {layout.conf_dir}; run "
                              "kubesalt-controller init first")
    if read_pid(layout) is None:
        subprocess.run(
            [salt_script("salt-master"), "-c", str(layout.conf_dir), "-d"],
            check=True, stdin=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _answering(layout, settings), START_TIMEOUT,
                  f"salt-master to answer on {settings['interface']}:{settings['ret_port']}")
    except ControllerError as exc:
        raise ControllerError(f"{exc}; see {layout.log_file}") from None
    return status(layout)


def stop(layout):
    pid = read_pid(layout)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    try:
        _wait_for(lambda: read_pid(layout) is None and not process_alive(pid), STOP_TIMEOUT,
                  f"salt-master (pid {pid}) to exit")
    except ControllerError:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        _wait_for(lambda: not process_alive(pid), STOP_TIMEOUT,
                  f"salt-master (pid {pid}) to die")
    return True


def process_alive(pid):
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


def status(layout):
    settings = config.read_settings(layout)
    pid = read_pid(layout)
    return {
        "running": pid is not None,
        "pid": pid,
        "config_dir": str(layout.conf_dir),
        "interface": settings.get("interface"),
        "publish_port": settings.get("publish_port"),
        "ret_port": settings.get("ret_port"),
        "https_port": settings.get("https_port"),
        "advertise": settings.get("advertise"),
        "master_fingerprint": fingerprint(layout),
    }
