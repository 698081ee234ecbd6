"""conjurer on real lab nodes against a real controller: install, refusals, prechecks,
removal. The three files cluster.installer writes are pushed into a node and run there."""

import base64
import datetime
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.layout import Layout
from kubesalt.master.trust import pki
from kubesalt.minion_bootstrap import credentials
from tests.waiting import wait_for

pytestmark = pytest.mark.lab

DEST = "/root/kubesalt"


@pytest.fixture(scope="module")
def installer(lab_controller, tmp_path_factory):
    lab_controller.run_ok("cluster.create", "lab1", "os=debian-12")
    dest = tmp_path_factory.mktemp("lab1")
    lab_controller.run_ok("cluster.installer", "lab1", f"dest={dest}")
    return dest


def conjurer(node, *flags, edge="lab1", creds="lab1.pem", passphrase="lab1-passphrase.txt"):
    return node.run(["python3", f"{DEST}/conjurer", f"-edge-name={edge}",
                     f"-passphrase-file={DEST}/{passphrase}", f"-creds-file={DEST}/{creds}",
                     *flags], timeout=300)


def unchanged(node, hostname):
    assert not node.exists("/opt/kubesalt")
    assert not node.exists("/etc/systemd/system/kubesalt-minion.service")
    assert node.run(["hostname"]).stdout.strip() == hostname



@pytest.fixture
def fresh(lab):
    """A node as the lab made it, given back that way (conjurer renames it)."""
    node = lab.nodes[1]
    yield node
    node.run(["python3", f"{DEST}/conjurer", "-d"])
    node.run(["rm", "-rf", DEST, "/etc/kubernetes", "/etc/systemd/system/firewalld.service"])
    node.write("/etc/hostname", node.name + "\n")
    node.run(["hostname", node.name])


def test_install_discovers_the_node(lab, lab_controller, installer, fresh):
    fresh.push(installer, DEST)
    proc = conjurer(fresh)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["[+] Initiating edge node install", "[+] Provisioning node",
                         "[+] Step 1. Installing node-agent"]
    hostname = fresh.run(["hostname"]).stdout.strip()
    assert hostname == f"node-{hostname.split('-')[1]}-10-77-0-12-lab1"
    assert f"[+] Step 2. Setting hostname to {hostname}" in lines
    for step in ("Step 3. Installing credentials on node", "Step 4. Configuring node-agent",
                 "Step 5. Starting node-agent"):
        assert f"[+] {step}" in lines
    assert lines[-1].startswith("[+] Successfully provisioned node")
    wait_for(lambda: fresh.exists("/opt/kubesalt/salt/var/log/salt/minion"), 30,
             "the minion's log where the seed says")
    assert fresh.systemctl("is-active", "kubesalt-minion").stdout.strip() == "active"
    # the agent came installed in its bundle: no pip, no wheels on the node
    assert not fresh.exists("/opt/kubesalt/venv/bin/pip")
    assert not fresh.exists("/opt/kubesalt/wheels")

    def discovered():
        rows = lab_controller.run_ok("node.list", f"search={hostname}")
        return rows and rows[0]["status"] == "DISCOVERED"

    wait_for(discovered, 60, "the node's key to be pending")
    # running conjurer again on an installed node is safe
    again = conjurer(fresh)
    assert again.returncode == 0, again.stderr
    # -d removes all of kubesalt's and gives the node its name back
    removed = fresh.run(["python3", f"{DEST}/conjurer", "-d"])
    assert removed.returncode == 0, removed.stderr
    assert f"[+] Restored hostname {fresh.name}" in removed.stdout
    unchanged(fresh, fresh.name)
    assert fresh.read("/etc/hostname").strip() == fresh.name


def _node_id(node, cluster):
    """The id conjurer gives `node` (identity.node_identity, seen from the node)."""
    short = hashlib.sha256(node.read("/etc/machine-id").strip().encode()).hexdigest()[:8]
    return f"node-{short}-10-77-0-12-{cluster}"


def test_an_id_another_key_holds_changes_nothing_and_names_the_key(lab_controller, fresh,
                                                                   tmp_path):
    """The issue's case: a customer's minion with this node's id is pending on the same
    controller (its key where Salt puts a minion's that asked to be accepted). conjurer is
    refused before it installs or renames anything."""
    lab_controller.run_ok("cluster.create", "clash", "os=debian-12")
    lab_controller.run_ok("cluster.installer", "clash", f"dest={tmp_path}")
    node_id = _node_id(fresh, "clash")
    pending = Layout.for_root(lab_controller.root).pki_dir / "minions_pre" / node_id
    pending.write_text(rsa.generate_private_key(public_exponent=65537, key_size=2048)
                       .public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat
                                                  .SubjectPublicKeyInfo).decode())
    fresh.push(tmp_path, DEST)
    try:
        proc = conjurer(fresh, edge="clash", creds="clash.pem",
                        passphrase="clash-passphrase.txt")
    finally:
        pending.unlink()
    assert proc.returncode == 5, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"[-] the controller refused this node: a key with the id {node_id} "
                           "is already pending on the controller"), line
    assert f"salt-run node.forget {node_id}" in line
    assert line.endswith("nothing on this node was changed")
    unchanged(fresh, fresh.name)
    assert not fresh.exists("/opt/kubesalt/original-hostname.json")
    assert lab_controller.run_ok("node.list", f"search={node_id}") == []


def test_a_node_of_another_os_than_its_cluster_changes_nothing(lab_controller, fresh, tmp_path):
    lab_controller.run_ok("cluster.create", "ubu", "os=ubuntu-22.04")
    lab_controller.run_ok("cluster.installer", "ubu", f"dest={tmp_path}")
    fresh.push(tmp_path, DEST)
    proc = conjurer(fresh, edge="ubu", creds="ubu.pem", passphrase="ubu-passphrase.txt")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "[os] this node runs debian 12 (debian-12) but cluster ubu is for ubuntu-22.04" \
        in proc.stderr
    assert "create a cluster for debian-12 (salt-run cluster.create NAME os=debian-12)" \
        in proc.stderr
    unchanged(fresh, fresh.name)


def _expired_credentials(lab_controller, workdir):
    ca = pki.ensure_ca(lab_controller.root / "var/lib/kubesalt/pki")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    issued = pki.issue_installer(ca, "lab1", 1, now=past)
    current = credentials.open_credentials((workdir / "lab1.pem").read_text(),
                                           (workdir / "lab1-passphrase.txt").read_text(),
                                           "lab1")
    passphrase = credentials.generate_passphrase()
    (workdir / "expired.pem").write_text(credentials.seal(
        "lab1", current.controller, ca.cert_pem, issued.cert_pem, issued.serial,
        issued.not_after, issued.private_numbers, passphrase))
    (workdir / "expired-passphrase.txt").write_text(passphrase)


def _tamper(pem):
    """One character of the encrypted key changed, the file otherwise well-formed."""
    begin, end = "-----BEGIN KUBESALT INSTALLER-----", "-----END KUBESALT INSTALLER-----"
    head, rest = pem.split(begin)
    body, tail = rest.split(end)
    record = json.loads(base64.b64decode("".join(body.split())))
    text = record["ciphertext"]
    record["ciphertext"] = text[:10] + ("A" if text[10] != "A" else "B") + text[11:]
    encoded = base64.b64encode(json.dumps(record).encode()).decode()
    lines = "\n".join(encoded[i:i + 64] for i in range(0, len(encoded), 64))
    return f"{head}{begin}\n{lines}\n{end}{tail}"


def test_bad_credentials_change_nothing(lab_controller, installer, fresh, tmp_path):
    pem = (installer / "lab1.pem").read_text()
    (tmp_path / "lab1.pem").write_text(pem)
    (tmp_path / "lab1-passphrase.txt").write_text((installer / "lab1-passphrase.txt")
                                                  .read_text())
    (tmp_path / "wrong-passphrase.txt").write_text(credentials.generate_passphrase())
    (tmp_path / "truncated.pem").write_text(pem[:len(pem) // 2])
    (tmp_path / "tampered.pem").write_text(_tamper(pem))
    _expired_credentials(lab_controller, tmp_path)
    (tmp_path / "conjurer").write_bytes((installer / "conjurer").read_bytes())
    fresh.push(tmp_path, DEST)
    cases = [
        (dict(passphrase="wrong-passphrase.txt"), 12, "passphrase"),
        (dict(creds="tampered.pem"), 11, "damaged"),
        (dict(creds="truncated.pem"), 10, ""),
        (dict(edge="lab2"), 13, "lab2"),
        (dict(creds="expired.pem", passphrase="expired-passphrase.txt"), 14,
         "cluster.installer"),
    ]
    for kwargs, code, words in cases:
        proc = conjurer(fresh, **kwargs)
        assert proc.returncode == code, (kwargs, proc.stdout, proc.stderr)
        assert words.lower() in proc.stderr.lower(), (kwargs, proc.stderr)
        unchanged(fresh, fresh.name)


def test_rotated_credentials_refused_before_anything_changes(lab_controller, fresh, tmp_path):
    lab_controller.run_ok("cluster.create", "rot", "os=debian-12")
    old = lab_controller.run_ok("cluster.installer", "rot", f"dest={tmp_path / 'old'}")
    new = lab_controller.run_ok("cluster.installer", "rot", f"dest={tmp_path / 'new'}",
                                "rotate=True")
    assert new["revoked"] == [old["serial"]]
    fresh.push(tmp_path / "old", DEST)
    names = dict(edge="rot", creds="rot.pem", passphrase="rot-passphrase.txt")
    refused = conjurer(fresh, **names)
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert "revoked" in refused.stderr and "cluster.installer rot" in refused.stderr
    unchanged(fresh, fresh.name)
    assert lab_controller.run_ok("node.list", "cluster=rot") == []
    fresh.push(tmp_path / "new", DEST)
    installed = conjurer(fresh, **names)
    assert installed.returncode == 0, installed.stdout + installed.stderr


def _occupy_port_53(node):
    node.run(["systemd-run", "--unit=lab-dns", "python3", "-c",
              "import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.bind(('0.0.0.0', 53)); time.sleep(3600)"], check=True)
    wait_for(lambda: ":53 " in node.run(["ss", "-lun"]).stdout, 10, "port 53 bound")
    return lambda: node.systemctl("stop", "lab-dns")


def _fake_firewalld(node):
    node.write("/etc/systemd/system/firewalld.service",
               "[Service]\nExecStart=/bin/sleep infinity\n")
    node.systemctl("daemon-reload", check=True)
    node.systemctl("start", "firewalld", check=True)
    return lambda: node.systemctl("stop", "firewalld")


def _plant_kubernetes(node):
    node.run(["mkdir", "-p", "/etc/kubernetes/manifests"], check=True)
    return lambda: node.run(["rm", "-rf", "/etc/kubernetes"])


def _bad_hostname(node):
    # the kernel refuses an underscore, but /etc/hostname (what the node boots with) takes it
    node.write("/etc/hostname", "bad_name\n")
    return lambda: node.write("/etc/hostname", node.name + "\n")


def _rotate(node):
    original = node.read("/etc/resolv.conf")
    node.write("/etc/resolv.conf", original + "options rotate\n")
    return lambda: node.write("/etc/resolv.conf", original)


def _stop_ntp(lab):
    lab.stop_ntp()
    return lab.start_ntp


def _skew_ntp(lab):
    lab.skew_ntp(300)
    return lambda: lab.skew_ntp(0)


@pytest.mark.parametrize("trigger,check_name", [
    ("port53", "dns-port"), ("firewalld", "firewalld"), ("kubernetes", "previous-kubernetes"),
    ("hostname", "hostname"), ("rotate", "resolv-rotate"), ("ntp-stopped", "ntp"),
    ("ntp-skewed", "time-skew"),
])
def test_each_hard_precheck_stops_the_install(lab, installer, fresh, trigger, check_name):
    fresh.push(installer, DEST)
    hostname_before = fresh.run(["hostname"]).stdout.strip()
    undo = {"port53": lambda: _occupy_port_53(fresh), "firewalld": lambda: _fake_firewalld(fresh),
            "kubernetes": lambda: _plant_kubernetes(fresh),
            "hostname": lambda: _bad_hostname(fresh), "rotate": lambda: _rotate(fresh),
            "ntp-stopped": lambda: _stop_ntp(lab), "ntp-skewed": lambda: _skew_ntp(lab),
            }[trigger]()
    try:
        hostname_now = fresh.run(["hostname"]).stdout.strip()
        proc = conjurer(fresh)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert f"[{check_name}]" in proc.stderr
        assert "fix:" in proc.stderr
        assert "nothing on this node was changed" in proc.stderr
        unchanged(fresh, hostname_now)
    finally:
        undo()
    assert fresh.run(["hostname"]).stdout.strip() == hostname_before
