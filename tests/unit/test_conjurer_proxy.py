"""conjurer behind a site's HTTP proxy (tinyproxy on loopback): the cluster's proxy arrives
in the credentials, -proxy overrides it, the controller is asked through it, and a proxy that
will not carry the connection is a precheck failure that names it and the fix and changes
nothing."""

import copy
import types

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.inventory import clusters
from kubesalt.master.inventory.store import Store
from kubesalt.minion_bootstrap import cli, prechecks, proxy_connect
from tests.tinyproxy import TinyProxy
from tests.unit.test_conjurer_errors import (NODE, Controller, _args, _recording_agent,
                                             _tree, controller, issued, node_root)

__all__ = ["controller", "issued", "node_root"]  # fixtures shared with test_conjurer_errors
SECRET = "pr0xy-s3cret"
SETTINGS = {"advertise": "10.77.0.1", "publish_port": 4505, "ret_port": 4506,
            "https_port": 4507}


@pytest.fixture
def proxy(tmp_path):
    (tmp_path / "proxy").mkdir()
    started = TinyProxy(tmp_path / "proxy", auth=("alice", SECRET)).start()
    yield started
    started.stop()


def _via(issued, ctl, proxy_url):
    """The credentials of a node that reaches the loopback controller through `proxy_url`:
    every controller port is the endpoint's, so each CONNECT the prechecks make can land."""
    creds = copy.copy(issued.creds)
    creds.controller = dict(issued.creds.controller, address="127.0.0.1",
                            publish_port=ctl.port, ret_port=ctl.port, https_port=ctl.port)
    creds.route = proxy_connect.Proxy(proxy_url)
    return creds


def test_the_controller_is_asked_through_the_proxy(issued, controller, proxy):
    answer, refused = cli.ask_controller(_via(issued, controller, proxy.url), NODE,
                                         types.SimpleNamespace(held_public_key=lambda: None))
    assert (answer, refused) == ({"ok": True, "cluster": "edge1"}, None)
    assert f"CONNECT 127.0.0.1:{controller.port}" in proxy.log.read_text()


@pytest.mark.parametrize("how,words", [
    ("no credentials", "asks for credentials (HTTP 407"),
    ("port refused", "refuses CONNECT to 127.0.0.1:{port} (HTTP 403"),
])
def test_a_proxy_that_will_not_connect_fails_the_prechecks_and_changes_nothing(
        issued, node_root, capsys, monkeypatch, tmp_path, how, words):
    ctl = Controller(issued.ca, tmp_path)
    (tmp_path / "p").mkdir()
    site = TinyProxy(tmp_path / "p", auth=("alice", SECRET),
                     connect_ports=[1] if how == "port refused" else None).start()
    try:
        url = f"http://127.0.0.1:{site.port}" if how == "no credentials" else site.url
        monkeypatch.setattr(prechecks, "CHECKS", (prechecks.check_os, prechecks.check_controller))
        before = _tree(node_root)
        node_agent, ran = _recording_agent(node_root)
        code = cli.install(_args(), _via(issued, ctl, url), NODE, node_agent)
    finally:
        site.stop()
        ctl.close()
    out, err = capsys.readouterr()
    assert code == cli.EXIT_PRECHECK, out + err
    shown = proxy_connect.redact(url)
    assert (f"[controller-https-port] cannot reach the controller's https port "
            f"127.0.0.1:{ctl.port} through the proxy: the proxy {shown} "
            + words.format(port=ctl.port)) in err
    fix = ("give -proxy http://user:password@" if how == "no credentials"
           else "tinyproxy ConnectPort")
    assert fix in err
    assert err.strip().splitlines()[-1].endswith("nothing on this node was changed")
    assert (_tree(node_root), ran) == (before, [])
    assert SECRET not in out + err


# ---- the proxy in the credentials, and -proxy ------------------------------------------------

@pytest.fixture(scope="module")
def proxied_files(tmp_path_factory):
    """Credentials of a cluster created with a proxy, written by cluster.installer."""
    base = tmp_path_factory.mktemp("proxied")
    store = Store(base / "state")
    clusters.create(store, "edge1", proxy={"https": f"http://alice:{SECRET}@proxy.site:3128",
                                           "no_proxy": "192.168.0.0/16"})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (base / "master.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return clusters.installer(store, SETTINGS, base / "pki", base / "master.pub", "edge1",
                              str(base / "out"))


def _load(files, proxy=None):
    return cli.load_credentials(types.SimpleNamespace(
        edge_name="edge1", passphrase_file=files["passphrase_file"],
        creds_file=files["creds_file"], proxy=proxy))


def test_the_cluster_proxy_comes_with_the_credentials(proxied_files):
    creds = _load(proxied_files)
    assert creds.route.shown == "http://***@proxy.site:3128"
    assert (creds.route.host, creds.route.port, creds.route.has_credentials) == \
        ("proxy.site", 3128, True)


def test_proxy_flag_overrides_or_goes_direct(proxied_files):
    assert _load(proxied_files, "http://other.site:8080").route.shown == \
        "http://other.site:8080"
    assert _load(proxied_files, proxy_connect.DIRECT).route is None


def test_a_bad_proxy_flag_is_a_usage_error_without_the_password(proxied_files):
    with pytest.raises(cli.UsageError) as caught:
        _load(proxied_files, f"socks5://bob:{SECRET}@p:1080")
    assert str(caught.value).startswith("-proxy 'socks5://***@p:1080' is not a proxy URL")
    assert SECRET not in str(caught.value)


def test_proxy_flag_is_in_the_help():
    assert "-proxy URL" in cli.__doc__ and "-proxy direct" in cli.__doc__
    assert cli.parser().parse_args(["-proxy", "direct"]).proxy == "direct"
