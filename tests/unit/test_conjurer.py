"""conjurer pieces that need no node: flags, identity, agent files, removal, the zipapp."""

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from kubesalt.master.agent import bundle as agent_bundle
from kubesalt.master.agent import conjurer_zipapp
from kubesalt.minion_bootstrap import agent, cli, identity, original_hostname

CONTROLLER = {"address": "10.77.0.1", "publish_port": 4505, "ret_port": 4506,
              "https_port": 4507, "master_finger": "aa:bb"}


@pytest.mark.parametrize("argv", [
    ["-edge-name=edge1", "-passphrase-file=p.txt", "-creds-file=c.pem", "-t", "-m"],
    ["--edge-name", "edge1", "--passphrase-file", "p.txt", "--creds-file=c.pem", "--t", "--m"],
    ["-edge-name", "edge1", "-passphrase-file", "p.txt", "-creds-file", "c.pem", "-t", "-m"],
])
def test_flags_take_one_or_two_dashes(argv):
    args = cli.parser().parse_args(argv)
    assert (args.edge_name, args.passphrase_file, args.creds_file) == ("edge1", "p.txt", "c.pem")
    assert args.preflight_report and args.multi_minion and not args.delete


def test_unknown_flag_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parser().parse_args(["-edge=edge1"])
    assert exc.value.code == 2


def test_node_name_is_stable_and_valid(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    first = identity.node_identity(str(tmp_path), "edge1", "127.0.0.1", 4506)
    second = identity.node_identity(str(tmp_path), "edge1", "127.0.0.1", 4506)
    assert first == second
    assert first.name == f"node-{first.short_id}-127-0-0-1-edge1"
    assert len(first.name) <= 63


def test_minion_config_keeps_away_from_customer_paths():
    config = json.loads(agent.minion_config("node-x-10-77-0-11-edge1", "edge1", CONTROLLER))
    assert config["root_dir"] == "/opt/kubesalt/salt"
    assert config["master_finger"] == "aa:bb"
    assert config["master_port"] == 4506 and config["publish_port"] == 4505
    assert all(p.startswith("/opt/kubesalt/") for p in config["utils_dirs"])
    assert config["grains"]["kubesalt"]["cluster"] == "edge1"


def test_remove_touches_only_kubesalt(tmp_path):
    customer = tmp_path / "etc" / "salt" / "minion"
    customer.parent.mkdir(parents=True)
    customer.write_text("master: customer\n")
    node_agent = agent.Agent(root=str(tmp_path), run=lambda argv, **kw: subprocess.
                             CompletedProcess(argv, 0, "", ""))
    node_agent.configure("node-x-10-77-0-11-edge1", "edge1", CONTROLLER)
    node_agent.write_enrollment("node-x-10-77-0-11-edge1", "edge1", CONTROLLER, "s1")
    assert node_agent.enrollment()["cluster"] == "edge1"
    assert oct(os.stat(tmp_path / "opt/kubesalt/enrollment.json").st_mode & 0o777) == "0o600"
    removed = node_agent.remove()
    assert removed == ["/opt/kubesalt"]
    assert not (tmp_path / "opt" / "kubesalt").exists()
    assert customer.read_text() == "master: customer\n"
    assert identity.customer_minion_present(str(tmp_path))


# ---- the hostname: changed by an install, put back by -d ----------------------------------------

NEW_NAME = "node-abcd1234-10-77-0-11-edge1"


@pytest.fixture
def named_root(tmp_path, monkeypatch):
    """A node called edge-7, as conjurer finds it."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text("edge-7\n")
    (tmp_path / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tedge-7.lab edge-7\n"
                                        "10.0.0.5\tcontroller\n")
    monkeypatch.setattr(cli, "ROOT", str(tmp_path))
    return tmp_path


def _rename(root, name=NEW_NAME):
    original_hostname.remember(str(root), "edge-7", name)
    identity.set_hostname(name, root=str(root))


def _remove(root, *flags):
    ran = []
    node_agent = agent.Agent(root=str(root), run=lambda argv, **kw: ran.append(argv) or
                             subprocess.CompletedProcess(argv, 0, "", ""))
    args = cli.parser().parse_args(["-d", *flags])
    return cli.remove(args, node_agent), ran


@pytest.mark.parametrize("flags", [(), ("-m",)])
def test_d_puts_back_the_hostname_conjurer_changed(named_root, capsys, flags):
    before = {name: (named_root / "etc" / name).read_text() for name in ("hostname", "hosts")}
    if flags:
        (named_root / "etc/salt").mkdir()  # a customer's minion, which -m leaves alone
    _rename(named_root)
    assert (named_root / "etc/hostname").read_text() == NEW_NAME + "\n"
    record = json.loads((named_root / "opt/kubesalt/original-hostname.json").read_text())
    assert oct(os.stat(named_root / "opt/kubesalt/original-hostname.json").st_mode & 0o777) \
        == "0o644"
    assert record["set_to"] == NEW_NAME
    _rename(named_root)  # a rerun keeps what the node was called before kubesalt
    code, ran = _remove(named_root, *flags)
    assert (code, ran) == (cli.EXIT_OK, [["hostname", "edge-7"]])
    after = {name: (named_root / "etc" / name).read_text() for name in ("hostname", "hosts")}
    assert after["hostname"] == before["hostname"]
    assert sorted(after["hosts"].splitlines()) == sorted(before["hosts"].splitlines())
    assert "[+] Restored hostname edge-7" in capsys.readouterr().out
    assert not (named_root / "opt/kubesalt").exists()


def test_d_leaves_a_name_someone_gave_the_node_since(named_root, capsys):
    _rename(named_root)
    (named_root / "etc/hostname").write_text("renamed-by-hand\n")
    assert _remove(named_root)[0] == cli.EXIT_OK
    assert (named_root / "etc/hostname").read_text() == "renamed-by-hand\n"
    assert "Hostname left as it is: the node was renamed to renamed-by-hand since conjurer " \
           f"named it {NEW_NAME}" in capsys.readouterr().out


def test_a_node_already_named_records_nothing(named_root):
    (named_root / "etc/hostname").write_text(NEW_NAME + "\n")
    assert original_hostname.remember(str(named_root), NEW_NAME, NEW_NAME) is False
    assert not (named_root / "opt").exists()
    assert original_hostname.restore(str(named_root)).name is None


# ---- installing the agent software (Agent.install_software) --------------------------------

FAKE_SALT = {
    "salt/__init__.py": "",
    "salt/scripts.py": "import sys\n\n\ndef salt_minion():\n"
                       "    print('minion', sys.prefix, *sys.argv[1:])\n    return 0\n\n\n"
                       "def salt_call():\n    return 3\n",
}


def _bundle_info(**changes):
    return {"format": 2, "python": agent_bundle.python_tag(), "arch": agent_bundle.own_arch(),
            "salt": "3008.3", "compiled": True,
            "scripts": {"salt-minion": "salt.scripts:salt_minion",
                        "salt-call": "salt.scripts:salt_call"}, **changes}


def fake_bundle(tmp_path, name="bundle", files=None):
    """A bundle of a fake salt, made by the controller's own packer."""
    paths = {}
    for relative, text in (files or FAKE_SALT).items():
        source = tmp_path / f"{name}-src" / relative
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(text)
        paths[f"site-packages/{relative}"] = str(source)
    path = tmp_path / f"{name}.tar.gz"
    agent_bundle.pack(paths, _bundle_info(), path, True)
    return str(path), agent.sha256_file(path)


def node_agent(tmp_path):
    return agent.Agent(root=str(tmp_path / "node"), python=sys.executable)


def test_install_unpacks_a_ready_venv_and_writes_its_launchers(tmp_path):
    bundle, sha256 = fake_bundle(tmp_path)
    node = node_agent(tmp_path)
    assert node.install_software(bundle, sha256) is True
    venv = tmp_path / "node/opt/kubesalt/venv"
    assert (tmp_path / "node/opt/kubesalt/bundle.sha256").read_text() == sha256 + "\n"
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    assert os.readlink(venv / "bin/python") == os.path.realpath(sys.executable)
    minion = venv / "bin/salt-minion"
    assert minion.read_text().startswith(f"#!{venv}/bin/python -I\n")
    proc = subprocess.run([str(minion), "-c", "/conf"], capture_output=True, text=True,
                          timeout=60)
    assert (proc.returncode, proc.stdout.split()) == (0, ["minion", str(venv), "-c", "/conf"])
    assert subprocess.run([str(venv / "bin/salt-call")], timeout=60).returncode == 3
    # the shipped bytecode is valid here: importing neither rewrites nor recompiles it
    tag = sys.implementation.cache_tag
    pyc = venv / f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/salt" \
        / f"__pycache__/scripts.{tag}.pyc"
    before = (pyc.read_bytes(), pyc.stat().st_mtime_ns)
    probe = subprocess.run([str(venv / "bin/python"), "-c",
                            "import sys, salt.scripts; print(salt.scripts.__cached__); "
                            "print(sys.path)"], capture_output=True, text=True, timeout=60)
    assert probe.stdout.splitlines()[0] == str(pyc), probe.stderr
    assert (pyc.read_bytes(), pyc.stat().st_mtime_ns) == before
    assert str(Path(sys.prefix) / "lib") not in probe.stdout  # not the controller's venv
    # the same bundle again: nothing to do
    assert node.install_software(bundle, sha256) is False


def test_a_new_bundle_replaces_the_old_install_whole(tmp_path):
    node = node_agent(tmp_path)
    node.install_software(*fake_bundle(tmp_path, "one", dict(FAKE_SALT, **{"old.py": ""})))
    wheels = tmp_path / "node/opt/kubesalt/wheels"
    wheels.mkdir()  # what a format-1 install left
    assert node.install_software(*fake_bundle(tmp_path, "two", dict(FAKE_SALT, **{"new.py": ""})))
    site = next((tmp_path / "node/opt/kubesalt/venv/lib").glob("python*/site-packages"))
    assert (site / "new.py").exists() and not (site / "old.py").exists()
    assert sorted(os.listdir(tmp_path / "node/opt/kubesalt")) == ["bundle.sha256", "venv"]


def _evil_bundle(tmp_path, member, data=b"x", info=None):
    path = tmp_path / "evil.tar.gz"
    head = json.dumps(info or _bundle_info()).encode()
    with tarfile.open(path, "w:gz") as tar:
        first = tarfile.TarInfo(agent.BUNDLE_INFO)
        first.size = len(head)
        tar.addfile(first, io.BytesIO(head))
        good = tarfile.TarInfo("site-packages/salt/__init__.py")
        tar.addfile(good, io.BytesIO(b""))
        if member.isreg():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
    return str(path), agent.sha256_file(path)


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, linkname
    return member


@pytest.mark.parametrize("member,words", [
    (_member("site-packages/../../../../../evil"), "outside site-packages"),
    (_member("site-packages/salt/../../../../../../evil"), "outside site-packages"),
    (_member("/evil"), "outside site-packages"),
    (_member("evil"), "outside site-packages"),
    (_member("site-packages/salt/evil", tarfile.SYMTYPE, "/etc"), "not a regular file"),
    (_member("site-packages/evil", tarfile.LNKTYPE, "site-packages/salt/__init__.py"),
     "not a regular file"),
    (_member("site-packages/evil", tarfile.CHRTYPE), "not a regular file"),
    (_member("site-packages/salt/__init__.py"), "cannot be unpacked"),  # a name twice
])
def test_a_bundle_with_a_dangerous_member_is_refused_whole(tmp_path, member, words):
    node = node_agent(tmp_path)
    good = fake_bundle(tmp_path)
    node.install_software(*good)
    with pytest.raises(agent.AgentError, match=words):
        node.install_software(*_evil_bundle(tmp_path, member))
    home = tmp_path / "node/opt/kubesalt"
    assert not [p for p in tmp_path.rglob("*evil*") if p.name != "evil.tar.gz"]
    assert sorted(os.listdir(home)) == ["bundle.sha256", "venv"]
    assert (home / "bundle.sha256").read_text().strip() == good[1]
    assert subprocess.run([str(home / "venv/bin/salt-minion")], capture_output=True,
                          timeout=60).returncode == 0


def test_a_tampered_bundle_is_refused_before_anything_changes(tmp_path):
    bundle, sha256 = fake_bundle(tmp_path)
    data = bytearray(Path(bundle).read_bytes())
    data[len(data) // 2] ^= 1
    Path(bundle).write_bytes(bytes(data))
    with pytest.raises(agent.AgentError, match="does not match its checksum"):
        node_agent(tmp_path).install_software(bundle, sha256)
    assert not (tmp_path / "node").exists()


@pytest.mark.parametrize("info,words", [
    (_bundle_info(python="cp27"), "is for cp27/"),
    (_bundle_info(arch="s390x"), "/s390x, this node runs"),
    (_bundle_info(format=3), "has format 3"),
    (_bundle_info(scripts={"salt-minion": "os:system('x')"}), "bad script"),
])
def test_a_bundle_for_something_else_is_refused(tmp_path, info, words):
    bundle = _evil_bundle(tmp_path, _member("site-packages/salt/scripts.py"), b"", info=info)
    with pytest.raises(agent.AgentError, match=re.escape(words)):
        node_agent(tmp_path).install_software(*bundle)
    assert not [p for p in (tmp_path / "node").rglob("*") if not p.is_dir()]


def test_a_format_1_bundle_says_to_rebuild_it(tmp_path):
    path = tmp_path / "old.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        wheel = tarfile.TarInfo("wheels/salt-3008.3-py3-none-any.whl")
        tar.addfile(wheel, io.BytesIO(b""))
    with pytest.raises(agent.AgentError, match="older format .* kubesalt-controller "
                                               "agent-bundle"):
        node_agent(tmp_path).install_software(str(path), agent.sha256_file(path))

def test_zipapp_runs_with_only_the_standard_library(tmp_path):
    target = conjurer_zipapp.build(tmp_path / "conjurer")
    assert os.access(target, os.X_OK)
    assert conjurer_zipapp.build(tmp_path / "again").read_bytes() == target.read_bytes()
    interpreters = [sys.executable] + [str(p) for p in Path("/root/.pyenv/versions").glob(
        "3.8*/bin/python3.8")]
    for python in interpreters:
        proc = subprocess.run([python, "-I", "-S", str(target), "--help"], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, (python, proc.stderr)
        assert "-edge-name" in proc.stdout


# ---- conjurer's own Python requirement ---------------------------------------------------------

def _old_interpreters():
    """Real Pythons older than 3.8 on this machine (pyenv), if any."""
    found = []
    for pattern in ("2.7*/bin/python2.7", "3.6*/bin/python3.6", "3.7*/bin/python3.7"):
        found += [str(p) for p in Path("/root/.pyenv/versions").glob(pattern)]
    return found


@pytest.mark.parametrize("python", _old_interpreters() or [
    pytest.param(None, marks=pytest.mark.skip(reason="no Python older than 3.8 installed"))])
def test_zipapp_on_a_too_old_python_says_so(tmp_path, python):
    """The real zipapp on a real old interpreter: its __main__ must parse and run there."""
    target = conjurer_zipapp.build(tmp_path / "conjurer")
    proc = subprocess.run([python, str(target), "-edge-name=edge1"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    version = subprocess.run([python, "-c", "import sys; print('.'.join(map(str, "
                                            "sys.version_info[:3])))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"[-] conjurer needs Python 3.8 or newer; this is {version} "
                           f"({python}).")
    assert line.endswith(f"{target} -edge-name=edge1")


FAKE_OLD_PYTHON = """
import io, sys
sys.version_info = (3, 6, 8, "final", 0)
sys.executable = "/usr/bin/python3"
sys.argv = ["./conjurer", "-edge-name=edge1", "-creds-file=edge1.pem"]
os_release = sys.stdin.read()

def fake_open(path, *args, **kwargs):
    if path == "/etc/os-release":
        return io.StringIO(os_release)
    return open(path, *args, **kwargs)

exec(compile(MAIN, "__main__.py", "exec"), {"__name__": "__main__", "open": fake_open})
"""


@pytest.mark.parametrize("os_release,hint", [
    ('ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="8.9"\n',
     "On RHEL/CentOS 8: dnf install python38 (or python39), then run: python3.8 ./conjurer "
     "-edge-name=edge1 -creds-file=edge1.pem"),
    ('ID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="7"\n',
     "On RHEL/CentOS 7: yum install rh-python38 (Software Collections), then run: "
     "/opt/rh/rh-python38/root/usr/bin/python3.8 ./conjurer -edge-name=edge1"),
    ("ID=debian\nVERSION_ID=10\n",
     "Install Python 3.8 or newer from the operating system's packages, then run conjurer "
     "with it: python3.X ./conjurer -edge-name=edge1"),
    ("", "Install Python 3.8 or newer"),
])
def test_zipapp_main_explains_the_fix_per_distribution(os_release, hint):
    """The zipapp's __main__ text, run with a faked sys.version_info and /etc/os-release: this
    checks the message and the hints; that the text runs on a real old Python is the test
    above."""
    code = f"MAIN = {conjurer_zipapp.MAIN!r}\n" + FAKE_OLD_PYTHON
    proc = subprocess.run([sys.executable, "-I", "-c", code], input=os_release,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith("[-] conjurer needs Python 3.8 or newer; this is 3.6.8 "
                           "(/usr/bin/python3). ")
    assert hint in line
    assert "Traceback" not in proc.stderr


def test_zipapp_main_goes_on_to_the_cli_on_a_new_python():
    code = f"MAIN = {conjurer_zipapp.MAIN!r}\n" + (
        "import sys\nsys.argv = ['conjurer', '--help']\n"
        "exec(compile(MAIN, '__main__.py', 'exec'), {'__name__': '__main__'})\n")
    # minion_bootstrap importable by that name, as it is inside the zipapp
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(Path(cli.__file__).parents[1])))
    assert proc.returncode == 0, proc.stderr
    assert "-edge-name" in proc.stdout


# ---- step lines, and their timing with -t -------------------------------------------------------

SEED_STEPS = [
    "[+] Initiating edge node install",
    "[+] Provisioning node",
    "[+] Step 1. Installing node-agent",
    "[+] Step 2. Setting hostname to node-abcd1234-10-77-0-11-edge1",
    "[+] Step 3. Installing credentials on node",
    "[+] Step 4. Configuring node-agent",
    "[+] Step 5. Starting node-agent",
    "[+] Successfully provisioned node node-abcd1234-10-77-0-11-edge1 (DISCOVERED)",
]


class _Creds:
    cluster, serial, ca_cert_pem = "edge1", "s1", "CA"
    controller = dict(CONTROLLER)


def _install(monkeypatch, capsys, timed, tmp_path):
    from kubesalt.minion_bootstrap import checks, preflight, prechecks
    monkeypatch.setattr(cli, "ROOT", str(tmp_path))
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text(Path("/etc/os-release").read_text())
    node = identity.NodeIdentity("abcd1234", "10.77.0.11", "node-abcd1234-10-77-0-11-edge1",
                                 "node-abcd1234-10-77-0-11-edge1")
    monkeypatch.setattr(prechecks, "run", lambda ctx: [])
    monkeypatch.setattr(preflight, "run", lambda ctx: [checks.ok("cpus", "4 CPUs")])
    monkeypatch.setattr(cli, "check_installer", lambda creds, name, held: {"ok": True})
    monkeypatch.setattr(cli, "fetch_bundle", lambda creds, args, workdir: ("b.tgz", "00"))
    reported = []
    monkeypatch.setattr(cli, "enroll", lambda creds, name, pub, facts:
                        reported.append(facts) or {"status": "DISCOVERED"})
    monkeypatch.setattr(identity, "set_hostname", lambda name, root, run: None)
    node_agent = agent.Agent(run=lambda argv, **kw: subprocess.CompletedProcess(argv, 0, "", ""))
    for name in ("install_software", "write_ca", "write_enrollment", "configure", "start"):
        monkeypatch.setattr(node_agent, name, lambda *args, **kwargs: None)
    monkeypatch.setattr(node_agent, "generate_keys", lambda: "PUB")
    monkeypatch.setattr(node_agent, "held_public_key", lambda: None)
    args = cli.parser().parse_args(["-edge-name=edge1"] + (["-t"] if timed else []))
    assert cli.install(args, _Creds(), node, node_agent) == cli.EXIT_OK
    assert reported[0]["num_cpus"] >= 1 and reported[0]["os"]  # this machine's own facts
    return capsys.readouterr().out.splitlines()


def test_without_t_the_step_lines_are_the_seeds(monkeypatch, capsys, tmp_path):
    assert _install(monkeypatch, capsys, False, tmp_path) == SEED_STEPS


def test_t_adds_how_long_each_step_took(monkeypatch, capsys, tmp_path):
    lines = _install(monkeypatch, capsys, True, tmp_path)
    timings = [line for line in lines if " took " in line]
    assert [line.split(" took ")[0] for line in timings] == [f"[+] Step {n}"
                                                             for n in range(1, 6)]
    assert all(re.fullmatch(r"\[\+\] Step \d took \d+\.\d s", line) for line in timings)
    # each timing follows its own step, before the next one starts
    for number in range(1, 6):
        start = next(i for i, line in enumerate(lines) if line.startswith(f"[+] Step {number}."))
        assert lines[start + 1] == timings[number - 1]
    # and the rest is the seed's lines plus the preflight table
    assert [line for line in lines if line in SEED_STEPS] == SEED_STEPS
    assert any(line.startswith("CHECK") for line in lines)
