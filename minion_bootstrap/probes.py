"""The live side of conjurer's checks: what a check asks of the machine. Checks take a probes
object, so unit tests hand them a fake one and a fake root; `SystemProbes` asks the real node
(reading /proc and /sys below `root`, sockets for the network).
"""

import os
import platform
import shutil
import socket
import struct
import subprocess
import time

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


def _ntp_time(data, offset):
    seconds, fraction = struct.unpack("!II", data[offset:offset + 8])
    return seconds - NTP_EPOCH_OFFSET + fraction / 2.0 ** 32


def sntp_offset(server, port=123, timeout=3.0):
    """Clock offset (server minus local, seconds) from one SNTP exchange (RFC 4330)."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        request = bytearray(48)
        request[0] = (0 << 6) | (4 << 3) | 3  # no leap warning, version 4, client mode
        sent = time.time()
        seconds = int(sent) + NTP_EPOCH_OFFSET
        request[40:48] = struct.pack("!II", seconds, int((sent % 1) * 2 ** 32))
        sock.sendto(bytes(request), (server, port))
        data, _ = sock.recvfrom(512)
        received = time.time()
    if len(data) < 48:
        raise ValueError("short NTP answer")
    mode, stratum = data[0] & 0x7, data[1]
    if mode != 4 or stratum == 0 or stratum > 15:
        raise ValueError("the server answered but is not synchronised (stratum %d)" % stratum)
    server_received, server_sent = _ntp_time(data, 32), _ntp_time(data, 40)
    return ((server_received - sent) + (server_sent - received)) / 2.0


def _listening_ports(root, table):
    """Local ports with a listening (TCP) or bound (UDP) socket, from /proc/net/<table>."""
    ports = set()
    try:
        with open(os.path.join(root, "proc/net", table)) as handle:
            lines = handle.readlines()[1:]
    except OSError:
        return ports
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        state = fields[3]
        if table.startswith("tcp") and state != "0A":  # 0A = LISTEN
            continue
        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class SystemProbes:
    def __init__(self, root="/"):
        self.root = root

    def path(self, absolute):
        return os.path.join(self.root, absolute.lstrip("/"))

    def read(self, absolute, default=None):
        try:
            with open(self.path(absolute)) as handle:
                return handle.read()
        except OSError:
            return default

    # ---- network -------------------------------------------------------------------------

    def tcp_connect(self, host, port, timeout=3.0):
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except OSError:
            return False

    def port_in_use(self, port, protocols=("tcp", "udp")):
        for proto in protocols:
            for table in (proto, proto + "6"):
                if int(port) in _listening_ports(self.root, table):
                    return True
        return False

    def ntp_offset(self, server):
        return sntp_offset(server)

    def resolves(self, name):
        try:
            socket.getaddrinfo(name, None)
            return True
        except OSError:
            return False

    def hostname(self):
        text = self.read("/etc/hostname")
        return text.strip() if text and text.strip() else socket.gethostname()

    # ---- processes and services ------------------------------------------------------------

    def process_running(self, name):
        proc = self.path("/proc")
        try:
            entries = os.listdir(proc)
        except OSError:
            return False
        for entry in entries:
            if entry.isdigit():
                comm = self.read("/proc/%s/comm" % entry, "")
                if comm.strip() == name:
                    return True
        return False

    def unit_active(self, unit):
        if self.root == "/" and os.path.isdir("/run/systemd/system") and \
                shutil.which("systemctl"):
            proc = subprocess.run(["systemctl", "is-active", "--quiet", unit],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, check=False)
            return proc.returncode == 0
        return self.process_running(unit)

    # ---- resources -----------------------------------------------------------------------

    def cpu_count(self):
        return os.cpu_count() or 1

    def mem_bytes(self):
        for line in (self.read("/proc/meminfo", "") or "").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
        return 0

    def disk_free(self, path):
        probe = self.path(path)
        while not os.path.exists(probe) and probe not in ("/", ""):
            probe = os.path.dirname(probe)
        stats = os.statvfs(probe or "/")
        return stats.f_bavail * stats.f_frsize

    def swap_on(self):
        lines = (self.read("/proc/swaps", "") or "").splitlines()
        return len(lines) > 1

    def kernel_module_loaded(self, name):
        return os.path.isdir(self.path("/sys/module/" + name))

    def sysctl(self, name):
        value = self.read("/proc/sys/" + name.replace(".", "/"))
        return value.strip() if value is not None else None

    def arch(self):
        return platform.machine()

    def raw_disks(self):
        """[(device, size_bytes)] of whole disks with no partitions and no filesystem."""
        disks = []
        sys_block = self.path("/sys/block")
        try:
            names = sorted(os.listdir(sys_block))
        except OSError:
            return disks
        for name in names:
            if name.startswith(("ram", "zram", "dm-", "sr", "md", "nbd")):
                continue
            base = os.path.join(sys_block, name)
            size = int((self.read("/sys/block/%s/size" % name, "0") or "0").strip() or 0) * 512
            if size == 0 or any(p.startswith(name) for p in os.listdir(base)):
                continue
            if os.listdir(os.path.join(base, "holders")) if os.path.isdir(
                    os.path.join(base, "holders")) else False:
                continue
            if not self._blank("/dev/" + name):
                continue
            disks.append(("/dev/" + name, size))
        return disks

    def _blank(self, device):
        try:
            with open(self.path(device), "rb") as handle:
                head = handle.read(0x20000)  # covers every signature offset below
        except OSError:
            return False
        return not any(head[o:o + len(m)] == m for o, m in (
            (0x1FE, b"\x55\xaa"), (0x438, b"\x53\xef"), (0, b"XFSB"), (0x10040, b"_BHRfS_M"),
            (0xFF6, b"SWAPSPACE2"), (0, b"LUKS\xba\xbe"), (0x218, b"LVM2 001")))
