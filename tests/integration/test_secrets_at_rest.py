"""A proxy password given to cluster.create (through salt-run and through the API) is shown to
nobody and readable by no other user anywhere under the controller's root: Salt's job cache
keeps every runner call's arguments in files it creates world-readable."""

import json
import os
import subprocess

import pytest
import requests

from .controller import running

pytestmark = pytest.mark.integration

SECRET = "pr0xy-Secr3t"
VIEWER = ("vera", "view-Secret-42")


@pytest.fixture(scope="module")
def ctl():
    # root 0755 as /srv/ks or / would be: only kubesalt's own modes protect it
    with running("kss-", [(VIEWER[0], "viewer", VIEWER[1])], root_mode=0o755) as controller:
        yield controller


def test_proxy_password_is_neither_shown_nor_readable_by_others(ctl):
    proxy = json.dumps({"http": f"http://edge:{SECRET}@proxy.example:3128"})
    created = ctl.run_ok("cluster.create", "edge1", f"proxy={proxy}")
    assert SECRET not in json.dumps(created)
    assert created["proxy"]["http"] == "http://edge:***@proxy.example:3128"
    assert SECRET not in json.dumps(ctl.run_ok("cluster.list"))

    session = requests.Session()
    session.trust_env = False
    session.verify = str(ctl.ca_file)
    login = session.post(f"{ctl.api_url}/login", timeout=30,
                         json={"username": VIEWER[0], "password": VIEWER[1], "eauth": "file"})
    assert login.status_code == 200, login.text
    shown = session.post(f"{ctl.api_url}/", timeout=60,
                         headers={"X-Auth-Token": login.headers["X-Auth-Token"]},
                         json={"client": "runner", "fun": "cluster.show", "name": "edge1"})
    assert shown.status_code == 200 and SECRET not in shown.text
    assert "edge:***@proxy.example" in shown.text

    # root finds it where it is kept (the records, the job cache) ...
    found = subprocess.run(["grep", "-rl", SECRET, str(ctl.root)], capture_output=True,
                           text=True)
    assert found.stdout, "the test's secret was not kept anywhere: nothing was tested"
    assert any("/cache/salt/master/" in line for line in found.stdout.splitlines())
    # ... and no other user can read any of it
    as_nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                "--clear-groups", "grep", "-rl", SECRET, str(ctl.root)],
                               capture_output=True, text=True)
    assert as_nobody.stdout == "", as_nobody.stdout
    # and not by a path it knows either (Salt lists the job cache under jobs/)
    cachedir = ctl.root / "var" / "cache" / "salt" / "master"
    assert os.stat(cachedir).st_mode & 0o077 == 0
    # its parent too: a master started by systemd (boot, restart) adds o+x to the cachedir
    assert os.stat(cachedir.parent).st_mode & 0o077 == 0
    for kept in found.stdout.split():
        readable = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                   "--clear-groups", "cat", kept], capture_output=True)
        assert readable.returncode != 0 and SECRET.encode() not in readable.stdout, kept
