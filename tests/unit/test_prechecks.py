"""Every hard precheck and soft preflight check, passing and failing, over a fake root and
fake probes; the SNTP client against a real UDP server on loopback."""

import json
import socket
import struct
import threading
import time

import pytest

from kubesalt.minion_bootstrap import checks, preflight, prechecks, probes

GIB = 1024 ** 3


class FakeProbes:
    """Answers the questions checks ask of a machine, as a test sets them."""

    def __init__(self, root, **answers):
        self.root = root
        self.answers = dict(dict(
            tcp=True, ports=set(), offset=0.0, resolves=True, hostname="node-1",
            processes=set(), units=set(), cpus=4, mem=8 * GIB, free=100 * GIB, swap=False,
            modules={"overlay", "br_netfilter"},
            sysctls={"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"},
            arch="x86_64", raw=[("/dev/sdb", 100 * GIB)]), **answers)

    def read(self, absolute, default=None):
        return probes.SystemProbes(self.root).read(absolute, default)

    def tcp_connect(self, host, port, timeout=3.0):
        return self.answers["tcp"] is True or port not in self.answers["tcp"]

    def port_in_use(self, port, protocols=("tcp", "udp")):
        return port in self.answers["ports"]

    def ntp_offset(self, server):
        if isinstance(self.answers["offset"], Exception):
            raise self.answers["offset"]
        return self.answers["offset"]

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


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    (tmp_path / "etc" / "resolv.conf").write_text("nameserver 10.77.0.1\nsearch lab\n")
    return tmp_path


def context(root, roles=(), **answers):
    return prechecks.Context(root=str(root), controller_address="10.77.0.1", node_id="n1",
                             cluster="c1", probes=FakeProbes(str(root), **answers),
                             roles=roles)


def status(results, name):
    return {r.name: r.status for r in results}[name]


def test_clean_node_passes_every_hard_check(root):
    results = prechecks.run(context(root))
    assert [r for r in results if r.failed] == []


@pytest.mark.parametrize("setup,answers,name", [
    (lambda r: (r / "etc/os-release").write_text("ID=windows\nVERSION_ID=11\n"), {}, "os"),
    (None, {"ports": {53}}, "dns-port"),
    (None, {"tcp": {4505}}, "controller-publish-port"),
    (None, {"tcp": {4506}}, "controller-return-port"),
    (None, {"offset": OSError("timed out")}, "ntp"),
    (None, {"offset": 120.0}, "time-skew"),
    (None, {"offset": -45.0}, "time-skew"),
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
