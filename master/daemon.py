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

import salt.utils.crypt

from . import config, operations
from . import store as store_mod

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


def read_pid(layout, pidfile=None):
    try:
        pid = int(Path(pidfile or layout.pidfile).read_text().strip())
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
        subprocess.run(
            [salt_script("salt-master"), "-c", str(layout.conf_dir), "-d"],
            check=True, stdin=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _answering(layout, settings), START_TIMEOUT,
                  f"salt-master to answer on {settings['interface']}:{settings['ret_port']}")
    except ControllerError as exc:
        raise ControllerError(f"{exc}; see {layout.log_file}") from None
    if api_enabled(layout):
        start_api(layout, settings, spawn)
    return status(layout)


def start_api(layout, settings, spawn=True):
    """Start salt-api (once the master answers: its logins and calls go to the master) and
    wait until the API answers over HTTPS."""
    if spawn and read_pid(layout, layout.api_pidfile) is None:
        subprocess.run(
            [salt_script("salt-api"), "-c", str(layout.conf_dir), "-d"],
            check=True, stdin=subprocess.DEVNULL)
    try:
        _wait_for(lambda: api_answering(layout, settings), START_TIMEOUT,
                  f"salt-api to answer on https://{_local_host(settings)}:"
                  f"{settings.get('api_port')}")
    except ControllerError as exc:
        raise ControllerError(f"{exc}; see {layout.api_log_file}") from None


def _stop_pid(layout, pidfile, what):
    pid = read_pid(layout, pidfile)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    try:
        _wait_for(lambda: read_pid(layout, pidfile) is None and not process_alive(pid),
                  STOP_TIMEOUT, f"{what} (pid {pid}) to exit")
    except ControllerError:
        _kill_group(pid, what)
    return True


def stop(layout):
    """Stop salt-api, running operations (recorded as interrupted), then the master. True if
    the master was running."""
    _stop_pid(layout, layout.api_pidfile, "salt-api")
    if (Path(layout.state_dir) / store_mod.DB_NAME).exists():
        operations.interrupt_running(store_mod.Store(layout.state_dir), process_alive,
                                     lambda pid: _kill_group(pid, "operation process"))
    return _stop_pid(layout, layout.pidfile, "salt-master")


def _kill_group(pid, what):
    """SIGKILL `pid`'s process group (a daemon or an operation executor leads its own, so
    whatever it started goes too) and wait until it is gone."""
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        return
    _wait_for(lambda: not process_alive(pid), STOP_TIMEOUT, f"{what} (pid {pid}) to die")


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
        "api_port": settings.get("api_port") if api_enabled(layout) else None,
        "api_running": read_pid(layout, layout.api_pidfile) is not None,
        "api_pid": read_pid(layout, layout.api_pidfile),
        "advertise": settings.get("advertise"),
        "master_fingerprint": fingerprint(layout),
    }
