"""Every hard precheck and soft preflight check, passing and failing, over a fake root and
fake probes; the SNTP client against a real UDP server on loopback; the controller-clock
reading against real HTTPS servers (the controller's endpoint, and one with a skewed Date)
with a throwaway CA."""

import http.server
import json
import socket
import ssl
import struct
import threading
import time

import pytest

from kubesalt.master.endpoint import node_facts
from kubesalt.master.endpoint import server as endpoint
from kubesalt.master.trust import pki
from kubesalt.minion_bootstrap import checks, facts, preflight, prechecks, probes
from tests.serving import serve_in_background

GIB = 1024 ** 3


class FakeProbes:
    """Answers the questions checks ask of a machine, as a test sets them."""

    def __init__(self, root, **answers):
        self.root = root
        self.answers = dict(dict(
            tcp=True, ports=set(), offset=0.0, clock=0.0, uncertainty=0.5, sync="yes",
            resolves=True, hostname="node-1",
            processes=set(), units=set(), cpus=4, mem=8 * GIB, free=100 * GIB, swap=False,
            modules={"overlay", "br_netfilter"},
            sysctls={"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"},
            arch="x86_64", raw=[("/dev/sdb", 100 * GIB)], kernel="6.1.0-18-amd64",
            interfaces=[("eth0", ["10.77.0.11"]), ("eth1", [])]), **answers)
        self.asked = []

    def read(self, absolute, default=None):
        return probes.SystemProbes(self.root).read(absolute, default)

    def tcp_connect(self, host, port, timeout=3.0):
        return self.answers["tcp"] is True or port not in self.answers["tcp"]

    def port_in_use(self, port, protocols=("tcp", "udp")):
        return port in self.answers["ports"]

    def ntp_offset(self, server):
        self.asked.append(("ntp", server))
        if isinstance(self.answers["offset"], Exception):
            raise self.answers["offset"]
        return self.answers["offset"]

    def controller_clock(self, host, port, ca_cert_pem, connect_with=None):
        self.asked.append(("controller", f"{host}:{port}"))
        if isinstance(self.answers["clock"], Exception):
            raise self.answers["clock"]
        now = time.time()
        return probes.ClockReading(self.answers["clock"], self.answers["uncertainty"],
                                   now + self.answers["clock"])

    def time_sync(self):
        return self.answers["sync"], "timedatectl"

    def resolves(self, name):
        return self.answers["resolves"]

    def hostname(self):
        return self.answers["hostname"]

    def process_running(self, name):
        return name in self.answers["processes"]

    def unit_active(self, unit):
        return unit in self.answers["units"]

    def cpu_count(self):
        return self.answers["cpus"]

    def mem_bytes(self):
        return self.answers["mem"]

    def disk_free(self, path):
        return self.answers["free"]

    def swap_on(self):
        return self.answers["swap"]

    def kernel_module_loaded(self, name):
        return name in self.answers["modules"]

    def sysctl(self, name):
        return self.answers["sysctls"].get(name)

    def arch(self):
        return self.answers["arch"]

    def raw_disks(self):
        return self.answers["raw"]

    def kernel_release(self):
        return self.answers["kernel"]

    def interfaces(self):
        if isinstance(self.answers["interfaces"], Exception):
            raise self.answers["interfaces"]
        return self.answers["interfaces"]


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (tmp_path / "etc" / "resolv.conf").write_text("nameserver 10.77.0.1\nsearch lab\n")
    return tmp_path


def context(root, roles=(), ntp_server=None, **answers):
    return prechecks.Context(root=str(root), controller_address="10.77.0.1", node_id="n1",
                             cluster="c1", probes=FakeProbes(str(root), **answers),
                             roles=roles, ntp_server=ntp_server)


def status(results, name):
    return {r.name: r.status for r in results}[name]


def test_clean_node_passes_every_hard_check(root):
    results = prechecks.run(context(root))
    assert [r for r in results if r.failed] == []


NTP = {"ntp_server": "10.77.0.2"}


@pytest.mark.parametrize("setup,answers,name", [
    (lambda r: (r / "etc/os-release").write_text("ID=windows\nVERSION_ID=11\n"), {}, "os"),
    (None, {"ports": {53}}, "dns-port"),
    (None, {"tcp": {4505}}, "controller-publish-port"),
    (None, {"tcp": {4506}}, "controller-return-port"),
    (None, {"offset": OSError("timed out"), **NTP}, "ntp"),
    (None, {"offset": 120.0, **NTP}, "time-skew"),
    (None, {"offset": -45.0, **NTP}, "time-skew"),
    (None, {"clock": 600.0}, "time-skew"),
    (None, {"clock": -45.0}, "time-skew"),
    (None, {"clock": ConnectionRefusedError(111, "Connection refused")}, "time-skew"),
    (lambda r: (r / "etc/kubernetes").mkdir(), {}, "previous-kubernetes"),
    (lambda r: (r / "usr/local/bin").mkdir(parents=True) or
     (r / "usr/local/bin/kubeadm").write_text(""), {}, "previous-kubernetes"),
    (None, {"processes": {"kubelet"}}, "previous-kubernetes"),
    (None, {"hostname": "bad_name"}, "hostname"),
    (None, {"hostname": "a" * 64}, "hostname"),
    (None, {"units": {"firewalld"}}, "firewalld"),
    (None, {"units": {"fapolicyd"}}, "fapolicyd"),
    (lambda r: (r / "etc/resolv.conf").write_text("nameserver 1.1.1.1\noptions rotate\n"), {},
     "resolv-rotate"),
    (lambda r: (r / "opt/kubesalt").mkdir(parents=True) or
     (r / "opt/kubesalt/enrollment.json").write_text(json.dumps({"node_id": "other",
                                                                 "cluster": "c1"})), {},
     "existing-agent"),
    (lambda r: (r / "etc/salt").mkdir() or (r / "etc/salt/minion").write_text(""), {},
     "salt-minion"),
])
def test_each_hard_check_fails_with_a_fix(root, setup, answers, name):
    if setup:
        setup(root)
    results = prechecks.run(context(root, **answers))
    failed = [r for r in results if r.failed]
    assert [r.name for r in failed] == [name]
    assert failed[0].fix
    assert name in checks.format_failures(results)


@pytest.mark.parametrize("release,cluster_os", [
    ('ID=debian\nVERSION_ID="12"\n', "debian-12"),
    ('ID="rhel"\nVERSION_ID="8.9"\n', "rhel-8"),
    ('ID=ubuntu\nVERSION_ID="22.04"\n', "ubuntu-22.04"),
])
def test_the_node_runs_the_clusters_os(root, release, cluster_os):
    (root / "etc/os-release").write_text(release)
    ctx = context(root)
    ctx.cluster_os = cluster_os
    [result] = [r for r in prechecks.run(ctx) if r.name == "os"]
    assert (result.status, result.message.split(", ")[-1]) == ("pass", "as cluster c1 wants")


def test_a_node_of_another_os_than_its_clusters_fails_naming_both(root):
    ctx = context(root)
    ctx.cluster_os = "ubuntu-22.04"
    results = prechecks.run(ctx)
    [failed] = [r for r in results if r.failed]
    assert failed.name == "os"
    assert failed.message == "this node runs debian 12 (debian-12) but cluster c1 is for " \
                             "ubuntu-22.04"
    assert failed.fix == ("enroll a node that runs ubuntu-22.04 in c1, or create a cluster for "
                          "debian-12 (salt-run cluster.create NAME os=debian-12) and run "
                          "conjurer with that cluster's installer")
    # Debian 11 is not Debian 12: releases are matched exactly, not by major version alone
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="11"\n')
    ctx.cluster_os = "debian-12"
    assert status(prechecks.run(ctx), "os") == "fail"


def test_without_ntp_server_the_clock_is_the_controllers(root):
    ctx = context(root, clock=-600.4)
    results = prechecks.run(ctx)
    assert ctx.probes.asked == [("controller", "10.77.0.1:4507")]
    assert "ntp" not in {r.name for r in results}
    [skew] = [r for r in results if r.name == "time-skew"]
    assert skew.failed
    # how far, which way, compared with what, and how to fix it
    assert "600 s (10.0 min) ahead of the controller's clock" in skew.message
    assert "10.77.0.1:4507" in skew.message and "at most 30 s" in skew.message
    for fix in ("timedatectl set-ntp true", "chronyc makestep", "date -u -s"):
        assert fix in skew.fix
    behind = [r for r in prechecks.run(context(root, clock=75.0)) if r.name == "time-skew"]
    assert "75.0 s behind the controller's clock" in behind[0].message


@pytest.mark.parametrize("clock,uncertainty,expected", [
    (30.9, 1.0, checks.PASS),   # may be 29.9 s off: Date's whole seconds give the benefit
    (-30.9, 1.0, checks.PASS),
    (31.6, 0.5, checks.FAIL),   # more than 31 s even at the favourable end
    (-31.6, 0.5, checks.FAIL),
    (5.0, 0.5, checks.PASS),
])
def test_controller_clock_allows_for_its_uncertainty(root, clock, uncertainty, expected):
    results = prechecks.run(context(root, clock=clock, uncertainty=uncertainty))
    assert status(results, "time-skew") == expected


def test_an_unreadable_controller_clock_names_the_fix(root):
    results = prechecks.run(context(root, clock=TimeoutError("timed out")))
    [skew] = [r for r in results if r.name == "time-skew"]
    assert skew.failed and "cannot read the controller's clock" in skew.message
    assert "10.77.0.1:4507" in skew.message and "firewall" in skew.fix


def test_configured_ntp_server_is_checked_not_the_controller(root):
    ctx = context(root, ntp_server="10.77.0.2", offset=-120.0)
    results = prechecks.run(ctx)
    assert ctx.probes.asked == [("ntp", "10.77.0.2")]
    [skew] = [r for r in results if r.name == "time-skew"]
    assert skew.failed and "120 s (2.0 min) ahead of NTP server 10.77.0.2" in skew.message
    assert "10.77.0.2" in skew.fix and "chronyc makestep" in skew.fix
    refused = prechecks.run(context(root, ntp_server="10.77.0.2", offset=OSError("timed out")))
    [ntp] = [r for r in refused if r.name == "ntp"]
    assert ntp.failed and "10.77.0.2 does not answer" in ntp.message
    assert "UDP 123" in ntp.fix


def test_old_credentials_naming_the_controller_as_ntp_server(root):
    """Credentials from before NTP was optional name the controller's address: checked as
    NTP while it answers, the controller's clock when it does not (it never served NTP)."""
    answering = context(root, ntp_server="10.77.0.1", offset=2.0, clock=900.0)
    results = prechecks.run(answering)
    assert answering.probes.asked == [("ntp", "10.77.0.1")]
    assert [r for r in results if r.failed] == []
    silent = context(root, ntp_server="10.77.0.1", offset=OSError("timed out"), clock=1.0)
    results = prechecks.run(silent)
    assert silent.probes.asked == [("ntp", "10.77.0.1"), ("controller", "10.77.0.1:4507")]
    assert status(results, "ntp") == checks.WARN
    assert status(results, "time-skew") == checks.PASS
    skewed = context(root, ntp_server="10.77.0.1", offset=OSError("timed out"), clock=90.0)
    assert status(prechecks.run(skewed), "time-skew") == checks.FAIL


def test_controller_name_must_resolve(root):
    ctx = context(root, resolves=False)
    ctx.controller_address = "controller.example"
    assert status(prechecks.run(ctx), "controller-name") == checks.FAIL
    ctx.probes.answers["resolves"] = True
    assert status(prechecks.run(ctx), "controller-name") == checks.PASS


def test_same_agent_rerun_and_multi_minion_pass(root):
    (root / "opt/kubesalt").mkdir(parents=True)
    (root / "opt/kubesalt/enrollment.json").write_text(json.dumps({"node_id": "n1",
                                                                   "cluster": "c1"}))
    (root / "etc/salt").mkdir()
    (root / "etc/salt/minion").write_text("")
    ctx = context(root)
    ctx.allow_existing_minion = True
    assert [r for r in prechecks.run(ctx) if r.failed] == []


def test_preflight_clean_and_table(root):
    results = preflight.run(context(root, roles=("master",)))
    assert {r.status for r in results} == {checks.PASS}
    table = checks.format_table(results)
    assert table.splitlines()[0].split() == ["CHECK", "RESULT", "DETAILS"]
    assert len(table.splitlines()) == len(results) + 1


@pytest.mark.parametrize("answers,roles,name,expected", [
    ({"sync": "no"}, (), "time-sync", checks.WARN),
    ({"sync": "unknown"}, (), "time-sync", checks.WARN),
    ({"sync": "yes"}, (), "time-sync", checks.PASS),
    ({"cpus": 1}, (), "cpus", checks.WARN),
    ({"mem": int(1.5 * GIB)}, (), "memory", checks.WARN),
    ({"mem": GIB // 2}, (), "memory", checks.FAIL),
    ({"free": 5 * GIB}, (), "disk-var", checks.WARN),
    ({"free": GIB}, (), "disk-opt", checks.FAIL),
    ({"swap": True}, (), "swap", checks.WARN),
    ({"ports": {6443}}, (), "ports", checks.FAIL),
    ({"modules": {"overlay"}}, (), "kernel-modules", checks.WARN),
    ({"sysctls": {}}, (), "sysctls", checks.WARN),
    ({"raw": [("/dev/sdb", 10 * GIB)]}, ("storage",), "raw-disk", checks.WARN),
    ({"raw": []}, ("worker",), "raw-disk", checks.PASS),
    ({"arch": "aarch64"}, ("worker",), "arch", checks.WARN),
    ({"arch": "aarch64"}, ("master",), "arch", checks.FAIL),
    ({"arch": "s390x"}, (), "arch", checks.FAIL),
])
def test_each_soft_check(root, answers, roles, name, expected):
    assert status(preflight.run(context(root, roles=roles, **answers)), name) == expected


def test_soft_runtime_and_search_domains(root):
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/dockerd").write_text("")
    (root / "etc/resolv.conf").write_text("search *.corp lab\n")
    results = preflight.run(context(root))
    assert status(results, "container-runtime") == checks.FAIL
    assert status(results, "dns-search") == checks.WARN


def test_a_crashing_check_is_reported_not_fatal(root):
    def check_broken(ctx):
        raise RuntimeError("boom")

    results = checks.run([check_broken, prechecks.check_os], context(root))
    assert [r.status for r in results] == [checks.FAIL, checks.PASS]


def sntp_server(skew):
    """A one-answer SNTP server on loopback whose clock is `skew` seconds ahead."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve():
        data, peer = sock.recvfrom(48)
        now = time.time() + skew + probes.NTP_EPOCH_OFFSET
        stamp = struct.pack("!II", int(now), int((now % 1) * 2 ** 32))
        answer = bytearray(48)
        answer[0], answer[1] = (0 << 6) | (4 << 3) | 4, 2
        answer[24:32], answer[32:40], answer[40:48] = data[40:48], stamp, stamp
        sock.sendto(bytes(answer), peer)
        sock.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


@pytest.mark.parametrize("skew", [0.0, 90.0, -300.0])
def test_sntp_client_measures_offset(skew):
    port = sntp_server(skew)
    assert probes.sntp_offset("127.0.0.1", port=port) == pytest.approx(skew, abs=0.5)


def test_sntp_client_times_out_on_silence():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(OSError):
            probes.sntp_offset("127.0.0.1", port=silent.getsockname()[1], timeout=0.5)
    finally:
        silent.close()


def test_port_in_use_reads_proc_net(tmp_path):
    (tmp_path / "proc/net").mkdir(parents=True)
    header = "  sl  local_address rem_address   st\n"
    (tmp_path / "proc/net/tcp").write_text(header + "   0: 00000000:1A0A 00000000:0000 0A\n")
    (tmp_path / "proc/net/udp").write_text(header + "   0: 0100007F:0035 00000000:0000 07\n")
    system = probes.SystemProbes(str(tmp_path))
    assert system.port_in_use(6666)
    assert system.port_in_use(53)
    assert not system.port_in_use(6443)


def test_time_sync_is_unknown_below_a_fake_root(tmp_path):
    assert probes.SystemProbes(str(tmp_path)).time_sync() == ("unknown", "none")


def test_soft_time_sync_never_blocks(root):
    results = preflight.run(context(root, sync="no"))
    [sync] = [r for r in results if r.name == "time-sync"]
    assert sync.status == checks.WARN and "timedatectl set-ntp true" in sync.fix


# ---- the controller's clock over HTTPS -------------------------------------------------------

@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return pki.ensure_ca(tmp_path_factory.mktemp("pki"))


def _cert_files(ca, tmp_path, ips=("127.0.0.1",), now=None, ttl=10):
    cert, key = ca.issue_server_cert([], list(ips), ttl, now=now)
    (tmp_path / "s.crt").write_text(cert)
    (tmp_path / "s.key").write_text(key)
    return tmp_path / "s.crt", tmp_path / "s.key"


@pytest.fixture
def controller_endpoint(ca, tmp_path):
    """The controller's real HTTPS endpoint on loopback, with nothing to serve."""
    cert, key = _cert_files(ca, tmp_path)
    (tmp_path / "artifacts").mkdir()
    server = endpoint.EndpointServer(("127.0.0.1", 0), tmp_path / "artifacts", cert, key)
    serve_in_background(server)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_controller_clock_from_the_endpoints_date(ca, controller_endpoint):
    reading = probes.SystemProbes().controller_clock("127.0.0.1", controller_endpoint,
                                                     ca.cert_pem)
    # Same machine, same clock: the true offset is 0, within what the reading claims.
    assert abs(reading.offset) <= reading.uncertainty
    assert 0.5 <= reading.uncertainty < 1.5
    assert abs(reading.reference - time.time()) < 2


class _SkewedServer(http.server.HTTPServer):
    """An HTTPS server whose Date is `skew` seconds off, like a controller with another clock
    (the real endpoint's Date comes from http.server the same way)."""

    def __init__(self, cert, key, skew):
        skewed = skew

        class Handler(http.server.BaseHTTPRequestHandler):
            def date_time_string(self, timestamp=None):
                return super().date_time_string(time.time() + skewed)

            def do_GET(self):  # noqa: N802
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=10)


@pytest.mark.parametrize("skew", [600.0, -600.0, 45.0])
def test_controller_clock_measures_a_skew(ca, tmp_path, skew):
    server = _SkewedServer(*_cert_files(ca, tmp_path), skew)
    try:
        reading = probes.SystemProbes().controller_clock("127.0.0.1", server.server_port,
                                                         ca.cert_pem)
    finally:
        server.close()
    assert abs(reading.offset - skew) <= reading.uncertainty


def test_controller_clock_is_read_even_when_the_node_clock_makes_the_cert_invalid(ca, tmp_path):
    """A node whose clock is years off sees the controller's certificate as expired; the
    clock reading still verifies chain and name, so it can say how far off the clock is."""
    long_ago = time.time() - 40 * 86400
    cert, key = _cert_files(ca, tmp_path, now=long_ago, ttl=10)
    server = _SkewedServer(cert, key, 0.0)
    try:
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            probes.https_clock("127.0.0.1", server.server_port,
                               _strict_context(ca.cert_pem), timeout=10)
        message, fix = probes.describe_network_error(refused.value, "127.0.0.1",
                                                     server.server_port)
        assert "expired by this node's clock" in message and "timedatectl" in fix
        reading = probes.SystemProbes().controller_clock("127.0.0.1", server.server_port,
                                                         ca.cert_pem)
        assert abs(reading.offset) <= reading.uncertainty
    finally:
        server.close()


def _strict_context(cadata):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=cadata)
    return context


def test_controller_clock_refuses_another_ca(ca, tmp_path):
    stranger = pki.ensure_ca(tmp_path / "stranger")
    server = _SkewedServer(*_cert_files(stranger, tmp_path), 0.0)
    try:
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            probes.SystemProbes().controller_clock("127.0.0.1", server.server_port,
                                                   ca.cert_pem)
    finally:
        server.close()
    message, fix = probes.describe_network_error(refused.value, "127.0.0.1", 4507)
    assert "does not match the controller CA" in message and "proxy" in fix


def test_the_facts_conjurer_reports_at_enrollment(root):
    reported = facts.gather(context(root))
    assert reported == {
        "os": "debian", "osrelease": "12", "kernelrelease": "6.1.0-18-amd64",
        "cpuarch": "x86_64", "num_cpus": 4, "mem_total": 8192,
        "kubesalt_storage_candidates": ["/dev/sdb"],
        "kubesalt_interfaces": [{"name": "eth0", "ipv4": ["10.77.0.11"]},
                                {"name": "eth1", "ipv4": []}]}
    # What cannot be read is left out; the enrollment goes on.
    partial = facts.gather(context(root, interfaces=OSError("ioctl"), raw=[]))
    assert "kubesalt_interfaces" not in partial and "kubesalt_storage_candidates" not in partial
    assert partial["os"] == "debian"
    assert node_facts.clean(reported) == reported  # the controller keeps all of it


def test_the_hosts_interfaces_are_read_without_tools():
    interfaces = probes.SystemProbes("/").interfaces()
    assert interfaces and all(name != "lo" for name, _ in interfaces)
    assert probes.SystemProbes("/somewhere").interfaces() == []
