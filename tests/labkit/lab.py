"""Lab and Node: boot, enter, inspect and tear down systemd-nspawn lab nodes.

Everything the lab makes carries the `kslab` prefix (bridge, cgroups, run and state dirs), so a
new run finds and removes what a crashed one left. Addresses stay inside 10.77.0.0/24.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import rootfs
from .launcher import children

PREFIX = "kslab"
BRIDGE = PREFIX + "0"
BRIDGE_ADDRESS = "10.77.0.1"
NTP_ADDRESS = "10.77.0.2"
NETWORK = "10.77.0.0/24"
FIRST_NODE_HOST = 11
STATE = Path("/var/lib/kubesalt-lab")
CGROUP_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"))
NODE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
BOOT_TIMEOUT = 60
LAUNCHER = Path(__file__).with_name("launcher.py")


class LabError(RuntimeError):
    pass


def _run(argv, check=True, **kwargs):
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(argv, check=check, capture_output=True, text=True, **kwargs)


def _wait(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise LabError(f"timed out after {timeout}s waiting for {what}")


def _alive(pid):
    """Whether pid runs; an exited launcher stays a zombie until whoever started it reaps
    it, which may be never (the test process does not wait for its nodes)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class Node:
    def __init__(self, lab, name, address):
        self.lab = lab
        self.name = name
        self.address = address
        self.dir = STATE / "nodes" / name
        self.merged = self.dir / "merged"

    def __repr__(self):
        return f"Node({self.name}, {self.address})"

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def launcher_pid(self):
        """PID of the node's launcher (tests/labkit/launcher.py): its power supply, which
        runs systemd-nspawn and boots the node again when it reboots."""
        try:
            return int((self.dir / "launcher.pid").read_text())
        except (OSError, ValueError):
            return None

    @property
    def powered(self):
        launcher = self.launcher_pid
        return launcher is not None and _alive(launcher)

    @property
    def pid(self):
        """PID (on the host) of the node's systemd, its PID 1; None while it is off or
        between two boots."""
        if not self.powered:
            return None
        for nspawn in children(self.launcher_pid):
            for child in children(nspawn):
                try:
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        return child
                except OSError:
                    continue
        return None

    def _write_identity(self, extra_files):
        etc = self.merged / "etc"
        (etc / "hostname").write_text(self.name + "\n")
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.name}\n"
                                   f"{BRIDGE_ADDRESS}\tcontroller\n")
        resolv = etc / "resolv.conf"
        if resolv.is_symlink():
            resolv.unlink()
        resolv.write_text(f"nameserver {BRIDGE_ADDRESS}\n")
        (etc / "machine-id").write_text(secrets.token_hex(16) + "\n")
        network = etc / "systemd" / "network"
        network.mkdir(parents=True, exist_ok=True)
        (network / "10-host0.network").write_text(
            f"[Match]\nName=host0\n\n[Network]\nAddress={self.address}/24\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
        for path, text in (extra_files or {}).items():
            target = self.merged / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def boot(self, extra_files=None):
        """Power the node on. A new disk gets the node's identity (hostname, address,
        machine-id) and extra_files first; a disk that booted before keeps what is on it."""
        if self.powered:
            raise LabError(f"{self.name} is already running")
        new_disk = not (self.dir / "upper").exists()
        for sub in ("upper", "work", "merged"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(self.merged):
            lower = ":".join(str(d) for d in rootfs.lower_dirs())
            _run(["mount", "-t", "overlay", f"{PREFIX}-{self.name}", "-o",
                  f"lowerdir={lower},upperdir={self.dir / 'upper'},"
                  f"workdir={self.dir / 'work'}", str(self.merged)])
        if new_disk:
            self._write_identity(extra_files)
        cgroups = [root / PREFIX / self.name for root in CGROUP_ROOTS]
        for cgroup in cgroups:
            cgroup.mkdir(parents=True, exist_ok=True)
        # The launcher joins the node's own cgroups before it runs nspawn: without them all
        # nodes would share one payload tree (and nspawn needs --keep-unit: no host systemd).
        log = open(self.dir / "console.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [sys.executable, str(LAUNCHER), *map(str, cgroups), "--",
             "systemd-nspawn", "--quiet", "-b", "-D", str(self.merged),
             f"--machine={PREFIX}-{self.name}", "--register=no", "--keep-unit",
             f"--network-bridge={BRIDGE}", "--console=read-only"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        (self.dir / "launcher.pid").write_text(str(proc.pid))

    def wait_running(self, timeout=BOOT_TIMEOUT, replacing=None):
        """Wait until the node's systemd has finished booting; with `replacing` (the pid of
        a systemd that is going away), until another one has."""
        def state():
            if not self.powered:
                raise LabError(f"{self.name} is off: its launcher exited "
                               f"(see {self.dir / 'console.log'})")
            pid = self.pid
            if pid is None or pid == replacing:
                return False
            out = self._run_in(pid, ["systemctl", "is-system-running"], timeout=10)
            out = out.stdout.strip()
            return out in ("running", "degraded") and out

        return _wait(state, timeout, f"{self.name} to finish booting", interval=0.1)

    def reboot(self, timeout=BOOT_TIMEOUT):
        """Reboot the node cleanly, as its operator would (`systemctl reboot` in the node),
        and wait until it is running again."""
        before = self._running_pid()
        self.run(["systemctl", "reboot"], check=True)
        return self.wait_running(timeout, replacing=before)

    def power_off(self, timeout=20):
        """Pull the node's plug: SIGKILL its launcher, nspawn and every process of the
        machine at once, so nothing stops or flushes cleanly (what the processes wrote is in
        the host's page cache, so it stays). The disk stays for `boot`."""
        pid = self._running_pid()
        # nspawn's end of the node's veth, on the bridge: a boot can only make it again once
        # the kernel has removed it with the node's network namespace
        veth = self._run_in(pid, ["cat", "/sys/class/net/host0/iflink"]).stdout.strip()
        for root in CGROUP_ROOTS:
            _kill_cgroup(root / PREFIX / self.name)
        _wait(lambda: not self.powered, timeout, f"{self.name}'s launcher to die")
        if veth:
            _wait(lambda: not _host_link_exists(veth), timeout,
                  f"{self.name}'s veth (host ifindex {veth}) to go")

    def power_cut(self, timeout=BOOT_TIMEOUT):
        """Power loss and back: `power_off`, then boot on the same disk; waits until running."""
        self.power_off()
        self.boot()
        return self.wait_running(timeout)

    def _running_pid(self):
        pid = self.pid
        if pid is None:
            raise LabError(f"{self.name} is not running (python -m tests.labkit status)")
        return pid

    def restrict_egress(self, address, open_ports):
        """Reject (TCP reset) every TCP connection the node opens to `address` except to
        `open_ports`: an edge site whose firewall lets out only its proxy, or one port.

        The rule lives in the node's own network namespace (the host's nft entering it), so
        it ends with the node's boot and touches nothing else on the host."""
        allowed = ", ".join(str(p) for p in open_ports)
        rules = (f"table inet {PREFIX}_egress\n"
                 f"delete table inet {PREFIX}_egress\n"
                 f"table inet {PREFIX}_egress {{\n"
                 f"  chain output {{\n"
                 f"    type filter hook output priority 0; policy accept;\n"
                 f"    ip daddr {address} tcp dport != {{ {allowed} }} counter "
                 f"reject with tcp reset\n"
                 f"  }}\n"
                 f"}}\n")
        proc = subprocess.run(["nsenter", "-t", str(self._running_pid()), "-n", "--", "nft",
                               "-f", "-"], input=rules, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise LabError(f"{self.name}: nft refused the egress rules: {proc.stderr.strip()}")

    def signal_stop(self):
        launcher = self.launcher_pid
        if launcher and _alive(launcher):
            os.kill(launcher, signal.SIGTERM)

    def stop(self, timeout=20):
        launcher = self.launcher_pid
        if launcher and _alive(launcher):
            os.kill(launcher, signal.SIGTERM)
            try:
                _wait(lambda: not _alive(launcher), timeout, f"{self.name} to stop")
            except LabError:
                os.killpg(launcher, signal.SIGKILL)
        for root in CGROUP_ROOTS:
            cgroup = root / PREFIX / self.name
            if cgroup.exists():
                _kill_cgroup(cgroup)
        if os.path.ismount(self.merged):
            _run(["umount", "-l", str(self.merged)], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- using the node ----------------------------------------------------------------------

    def run(self, argv, check=False, input=None, timeout=600, env=None):
        """Run argv inside the node (all its namespaces, a clean environment)."""
        return self._run_in(self._running_pid(), argv, check, input, timeout, env)

    def _run_in(self, pid, argv, check=False, input=None, timeout=600, env=None):
        environment = dict(NODE_ENV, **(env or {}))
        command = ["nsenter", "-t", str(pid), "-a", "--", "env", "-i",
                   *[f"{k}={v}" for k, v in environment.items()], *argv]
        proc = subprocess.run(command, input=input, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"{self.name}: {' '.join(argv)} exited {proc.returncode}: "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def sh(self, script, check=False, timeout=600):
        return self.run(["/bin/sh", "-c", script], check=check, timeout=timeout)

    def systemctl(self, *args, check=False):
        return self.run(["systemctl", *args], check=check)

    def path(self, absolute):
        """The node's file as seen from the host (through its overlay)."""
        return self.merged / absolute.lstrip("/")

    def read(self, absolute):
        proc = self.run(["cat", absolute])
        if proc.returncode != 0:
            raise FileNotFoundError(f"{self.name}:{absolute}")
        return proc.stdout

    def exists(self, absolute):
        return self.run(["test", "-e", absolute]).returncode == 0

    def write(self, absolute, data, mode=0o644):
        self.run(["mkdir", "-p", os.path.dirname(absolute)], check=True)
        self.run(["/bin/sh", "-c", f"cat > '{absolute}' && chmod {mode:o} '{absolute}'"],
                 input=data, check=True)

    def push(self, source, dest):
        """Copy a host file or directory into the node (the node's /tmp is its own tmpfs, so
        files go in through the node's mount namespace, not the overlay)."""
        source = Path(source)
        if source.is_dir():
            archive = subprocess.run(["tar", "-C", str(source), "-cf", "-", "."],
                                     capture_output=True, check=True).stdout
            self.run(["mkdir", "-p", dest], check=True)
            proc = subprocess.run(["nsenter", "-t", str(self.pid), "-a", "--", "tar", "-C",
                                   dest, "-xf", "-"], input=archive, capture_output=True,
                                  check=False)
        else:
            self.run(["mkdir", "-p", os.path.dirname(dest) or "/"], check=True)
            proc = subprocess.run(["nsenter", "-t", str(self.pid), "-a", "--", "/bin/sh",
                                   "-c", f"cat > '{dest}' && chmod "
                                         f"{source.stat().st_mode & 0o777:o} '{dest}'"],
                                  input=source.read_bytes(), capture_output=True,
                                  check=False)
        if proc.returncode != 0:
            raise LabError(f"push to {self.name}:{dest} failed: {proc.stderr!r}")


def _host_link_exists(ifindex):
    for link in Path("/sys/class/net").iterdir():
        try:
            if (link / "ifindex").read_text().strip() == ifindex:
                return True
        except OSError:  # a link going away as we look
            continue
    return False


def _kill_cgroup(cgroup):
    """Kill whatever is left in a node's cgroup tree, then remove it."""
    kill_all = cgroup / "cgroup.kill"  # cgroup v2: the whole tree at once, nothing escapes
    if kill_all.exists():
        kill_all.write_text("1")
    for _ in range(50):
        pids = []
        for procs in cgroup.rglob("cgroup.procs"):
            try:
                pids.extend(int(p) for p in procs.read_text().split())
            except OSError:
                continue
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    for directory in sorted((p for p in cgroup.rglob("*") if p.is_dir()),
                            key=lambda p: len(p.parts), reverse=True) + [cgroup]:
        try:
            directory.rmdir()
        except OSError:
            pass


class Lab:
    def __init__(self):
        self.state_file = STATE / "lab.json"

    # ---- network -----------------------------------------------------------------------------

    @staticmethod
    def _bridge_up():
        if _run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
            _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        addresses = _run(["ip", "-o", "addr", "show", "dev", BRIDGE]).stdout
        if f"{BRIDGE_ADDRESS}/24" not in addresses:
            _run(["ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])

    @property
    def bridge_address(self):
        return BRIDGE_ADDRESS

    @property
    def ntp_server_address(self):
        return NTP_ADDRESS

    # ---- nodes -------------------------------------------------------------------------------

    def _state(self):
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _names(self):
        return self._state().get("nodes", [])

    @property
    def nodes(self):
        return [self.node(n) for n in self._names()]

    def node(self, name):
        state = self._state()
        known = state.get("nodes", []) + (["ntp"] if state.get("ntp") else [])
        if name not in known:
            raise LabError(f"unknown node {name!r}: the lab has "
                           f"{', '.join(known) or 'no nodes (python -m tests.labkit up)'}")
        if name == "ntp":
            return Node(self, "ntp", NTP_ADDRESS)
        number = int(name.removeprefix("node"))
        return Node(self, name, f"10.77.0.{FIRST_NODE_HOST + number - 1}")

    def up(self, count, ntp=True):
        """Boot node1..node<count> (and the NTP node); returns the nodes once all are up."""
        if count < 1 or count > 200:
            raise LabError("a lab has 1 to 200 nodes")
        rootfs.prepare()
        self.down()
        STATE.mkdir(parents=True, exist_ok=True)
        self._bridge_up()
        names = [f"node{i}" for i in range(1, count + 1)]
        self.state_file.write_text(json.dumps({"nodes": names, "ntp": ntp}))
        nodes = [self.node(n) for n in names]
        if ntp:
            self.node("ntp").boot(extra_files=_ntp_files(0))
        for node in nodes:
            node.boot()
        if ntp:
            self.node("ntp").wait_running()
            # enabled, so that it serves again after the NTP node reboots
            self.node("ntp").systemctl("enable", "lab-ntp.service", check=True)
            self.start_ntp()
        for node in nodes:
            node.wait_running()
        return nodes

    def renew(self, nodes=None):
        """Replace nodes (default: all) with freshly booted ones, as if reinstalled: same
        names and addresses, nothing left of what ran on them."""
        nodes = list(nodes) if nodes is not None else self.nodes
        for node in nodes:
            node.signal_stop()
        for node in nodes:
            node.stop()
        for node in nodes:
            node.boot()
        for node in nodes:
            node.wait_running()
        return nodes

    def down(self):
        """Remove every node, mount, link, cgroup and process of this lab, also what a
        crashed run left behind."""
        nodes_dir = STATE / "nodes"
        names = set(self._names()) | {"ntp"}
        if nodes_dir.exists():
            names |= {p.name for p in nodes_dir.iterdir()}
        doomed = [Node(self, name, "") for name in sorted(names)]
        for node in doomed:  # all shut down at once; then each is waited for and cleaned
            node.signal_stop()
        for node in doomed:
            node.stop()
        for root in CGROUP_ROOTS:
            leftover = root / PREFIX
            if leftover.exists():
                _kill_cgroup(leftover)
        for line in _run(["mount"], check=False).stdout.splitlines():
            if line.startswith(f"{PREFIX}-"):
                _run(["umount", "-l", line.split(" on ")[1].split(" type ")[0]], check=False)
        for link in _run(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
            name = link.split(": ")[1].split("@")[0]
            if name == BRIDGE or name.startswith(("vb-", f"{PREFIX}")):
                _run(["ip", "link", "del", name], check=False)
        self.state_file.unlink(missing_ok=True)

    def status(self):
        return {
            "bridge": BRIDGE, "bridge_address": BRIDGE_ADDRESS, "network": NETWORK,
            "ntp_server": NTP_ADDRESS,
            "nodes": [{"name": n.name, "address": n.address, "pid": n.pid,
                       "running": n.pid is not None} for n in self.nodes],
        }

    # ---- the lab's NTP server ------------------------------------------------------------

    def start_ntp(self):
        self.node("ntp").systemctl("restart", "lab-ntp.service", check=True)
        _wait(lambda: self.node("ntp").run(["ss", "-lun"]).stdout.count(":123 ") > 0, 20,
              "chrony to serve NTP")

    def stop_ntp(self):
        self.node("ntp").systemctl("stop", "lab-ntp.service", check=True)

    def skew_ntp(self, seconds):
        """Make the NTP server serve a clock `seconds` ahead (negative: behind)."""
        ntp = self.node("ntp")
        ntp.write("/etc/default/lab-ntp", _ntp_files(seconds)["/etc/default/lab-ntp"])
        self.start_ntp()


def _ntp_files(skew):
    return {
        "/etc/chrony/lab.conf": (
            "# The lab's NTP server: serves its own clock, never disciplines it.\n"
            "local stratum 8\nallow 10.77.0.0/24\nbindaddress " + NTP_ADDRESS + "\n"
            "cmdport 0\ndriftfile /var/lib/chrony/lab.drift\n"),
        "/etc/default/lab-ntp": f"LAB_NTP_SKEW={int(skew):+d}s\n",
        "/etc/systemd/system/lab-ntp.service": (
            "[Unit]\nDescription=lab NTP server (chrony, clock offset by faketime)\n"
            "After=network-online.target\n\n[Service]\nEnvironmentFile=/etc/default/lab-ntp\n"
            "ExecStart=/usr/bin/faketime -f ${LAB_NTP_SKEW} /usr/sbin/chronyd -d -x "
            "-f /etc/chrony/lab.conf\n"
            "\n[Install]\nWantedBy=multi-user.target\n"),
    }
