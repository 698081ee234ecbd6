"""The live side of conjurer's checks: what a check asks of the machine. Checks take a probes
object, so unit tests hand them a fake one and a fake root; `SystemProbes` asks the real node
(reading /proc and /sys below `root`, sockets for the network).
"""

import email.utils
import errno
import fcntl
import http.client
import os
import platform
import shutil
import socket
import ssl
import struct
import subprocess
import time

from . import proxy_connect

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
# OpenSSL's X509_V_FLAG_NO_CHECK_TIME; the ssl module has no name for it.
_NO_CHECK_TIME = 0x200000
# OpenSSL verify codes that mean "the certificate's dates do not cover this node's time".
_CERT_NOT_YET_VALID, _CERT_EXPIRED = 9, 10
_HOSTNAME_MISMATCH = 62


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


class ClockReading:
    """The controller's clock seen from here: `offset` is controller minus local (seconds),
    `uncertainty` how far the true offset may be from it, `reference` the controller's time."""

    def __init__(self, offset, uncertainty, reference):
        self.offset = offset
        self.uncertainty = uncertainty
        self.reference = reference

    def __repr__(self):
        return "ClockReading(offset=%.3f, uncertainty=%.3f)" % (self.offset, self.uncertainty)


def clock_context(cadata):
    """TLS context for reading the controller's clock: the chain must lead to the controller CA
    and the name must match, as for every other call, but the certificate's validity dates are
    not checked: this context exists to find out whether this node's clock is wrong, and a
    wrong clock is exactly what makes a valid certificate look expired or not yet valid."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=cadata)
    context.verify_flags = int(context.verify_flags) | _NO_CHECK_TIME
    return context


def https_clock(host, port, context, timeout=10.0, connect_with=None):
    """The controller's clock from the Date header of one HTTPS answer (any path: its endpoint
    dates every answer, a 404 too). TLS is set up before the clock starts, so the round trip
    measured is one request and its answer; the answer was dated somewhere inside it, so the
    midpoint is the best guess, and Date's whole seconds add half a second either way."""
    conn = proxy_connect.HTTPSConnection(host, int(port), timeout=timeout, context=context,
                                         connect_with=connect_with)
    try:
        conn.connect()
        sent = time.time()
        conn.request("GET", "/", headers={"Connection": "close"})
        response = conn.getresponse()
        received = time.time()
        date = response.getheader("Date")
        response.read()
    finally:
        conn.close()
    parsed = email.utils.parsedate_tz(date) if date else None
    if parsed is None:
        raise ValueError("the controller's answer has no usable Date header (%r)" % date)
    # Date says the whole second the answer was made in: its middle is the best guess.
    reference = email.utils.mktime_tz(parsed) + 0.5
    midpoint = (sent + received) / 2.0
    return ClockReading(reference - midpoint, 0.5 + (received - sent) / 2.0, reference)


def _unwrap(exc):
    """The error underneath urllib's URLError wrapper."""
    reason = getattr(exc, "reason", None)
    if exc.__class__.__name__ == "URLError" and isinstance(reason, BaseException):
        return reason
    return exc


def describe_network_error(exc, host, port, timeout=None):
    """(message, fix) for a failed HTTPS exchange with the controller at host:port: what
    happened in words, and what to check, for each way the network or TLS can fail."""
    exc = _unwrap(exc)
    if isinstance(exc, proxy_connect.ProxyError):
        return exc.message, exc.fix
    where = "%s:%s" % (host, port)
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", None)
        detail = getattr(exc, "verify_message", None) or str(exc)
        if code in (_CERT_NOT_YET_VALID, _CERT_EXPIRED):
            return ("the controller's certificate at %s is %s by this node's clock"
                    % (where, detail),
                    "check this node's date and time (date; timedatectl), set it right "
                    "(timedatectl set-ntp true, or chronyc makestep) and run conjurer again")
        if code == _HOSTNAME_MISMATCH:
            return ("the certificate at %s is not issued for %s (%s)" % (where, host, detail),
                    "the credentials name an address the controller's certificate does not "
                    "cover: give the controller that address (kubesalt-controller init "
                    "--advertise) and download new credentials with cluster.installer, or a "
                    "proxy intercepts TLS to the controller")
        return ("the certificate at %s does not match the controller CA in the credentials (%s)"
                % (where, detail),
                "something other than this cluster's controller answers there: check the "
                "address, that no proxy intercepts TLS to %s, and that the credentials come "
                "from this controller (cluster.installer)" % where)
    if isinstance(exc, ssl.SSLError):
        return ("the TLS handshake with %s failed (%s)" % (where, exc.reason or exc),
                "check that %s is the controller's HTTPS port (kubesalt-controller init "
                "--https-port) and that no proxy intercepts TLS to it" % port)
    if isinstance(exc, socket.gaierror):
        return ("the controller's name %s does not resolve (%s)" % (host, exc.strerror or exc),
                "fix DNS or /etc/hosts on this node for %s" % host)
    if isinstance(exc, ConnectionRefusedError):
        return ("the controller at %s refused the connection: nothing listens there, or a "
                "firewall rejects it" % where,
                "check that the controller runs (kubesalt-controller status) with HTTPS port "
                "%s (kubesalt-controller init --https-port), and that firewalls allow TCP %s "
                "from this node" % (port, where))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        waited = " within %g s" % timeout if timeout else ""
        return ("no answer from the controller at %s%s" % (where, waited),
                "check that firewalls allow TCP %s from this node (a firewall that drops "
                "packets looks like this) and that %s is the controller's address" % (where, host))
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return ("no route to the controller at %s (%s)" % (where, exc.strerror),
                "check this node's network and routes to %s" % host)
    if isinstance(exc, http.client.HTTPException) or isinstance(exc, ConnectionError):
        return ("the controller at %s closed the connection without an answer (%s)"
                % (where, exc.__class__.__name__ + (": %s" % exc if str(exc) else "")),
                "check that %s is the controller's HTTPS port and see the controller's "
                "log" % port)
    text = getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
    return ("cannot talk to the controller at %s (%s)" % (where, text),
            "check this node's network path to %s" % where)


def _run_quietly(argv, timeout=5):
    """stdout of argv, or None when it cannot run, fails or hangs."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True,
                              timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


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


# ioctl: the primary IPv4 address of an interface (linux/sockios.h).
_SIOCGIFADDR = 0x8915


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

    def controller_clock(self, host, port, ca_cert_pem, connect_with=None):
        return https_clock(host, port, clock_context(ca_cert_pem), connect_with=connect_with)

    def time_sync(self):
        """(state, source): whether this node's own clock is kept by NTP ("yes", "no" or
        "unknown") and which tool said so."""
        if self.root != "/":
            return "unknown", "none"
        if shutil.which("timedatectl"):
            out = _run_quietly(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
            if out is not None and out.strip() in ("yes", "no"):
                return out.strip(), "timedatectl"
            # systemd before 239 (e.g. RHEL 7) has no `show`; `status` says it in words.
            for line in (_run_quietly(["timedatectl", "status"]) or "").splitlines():
                key, _, value = line.partition(":")
                if key.strip() in ("NTP synchronized", "System clock synchronized") \
                        and value.strip() in ("yes", "no"):
                    return value.strip(), "timedatectl"
        if shutil.which("chronyc"):
            for line in (_run_quietly(["chronyc", "tracking"]) or "").splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "Leap status":
                    return ("no" if "not synchronised" in value.lower() else "yes"), "chronyc"
        return "unknown", "none"

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

    def kernel_release(self):
        return platform.release()

    def interfaces(self):
        """[(name, [IPv4 address])] of the network interfaces other than loopback; the
        primary IPv4 address only (what the kernel answers SIOCGIFADDR with). Under another
        root (tests) there are none: the host's interfaces are not that root's."""
        if self.root != "/":
            return []
        found = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _, name in sorted(socket.if_nameindex(), key=lambda pair: pair[1]):
                if name == "lo":
                    continue
                try:
                    answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR,
                                         struct.pack("256s", name[:15].encode()))
                    found.append((name, [socket.inet_ntoa(answer[20:24])]))
                except OSError:  # no IPv4 address
                    found.append((name, []))
        return found

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
