"""The REST API's model without a master: functions served, roles, request checks, user store."""

import os
import stat

import pytest

from kubesalt.master import api
from kubesalt.master.layout import Layout


def test_functions_served_are_kubesalts_runners_only():
    served = set(api.function_schemas())
    assert "cluster.create" in served and "node.approve" in served
    assert all(f.split(".")[0] in ("cluster", "node", "artifacts") for f in served)
    assert not any(f.startswith("operation.") for f in served)
    assert set(api.roles()["viewer"]) == set(api.VIEWER_FUNCTIONS) <= served


@pytest.mark.parametrize("body,status,needle", [
    ({"client": "local", "fun": "cmd.run"}, 403, "runner only"),
    ({"client": "runner", "fun": "jobs.list_jobs"}, 403, "not a kubesalt API function"),
    ({"client": "runner"}, 400, "fun must name"),
    ([], 400, "non-empty"),
    ("x", 400, "JSON object"),
])
def test_check_chunks(body, status, needle):
    with pytest.raises(api.ApiError) as err:
        api.check_chunks(body)
    assert err.value.status == status and needle in err.value.message


def test_check_arguments():
    api.check_arguments("cluster.create", {"client": "runner", "fun": "cluster.create",
                                           "name": "a", "labels": {"x": "1"}, "ha": True})
    with pytest.raises(api.ApiError, match="unknown parameter 'dest'"):
        api.check_arguments("cluster.installer", {"client": "runner",
                                                  "fun": "cluster.installer", "name": "a",
                                                  "dest": "/etc"})
    with pytest.raises(api.ApiError, match="must be an integer"):
        api.check_arguments("cluster.create", {"client": "runner", "fun": "cluster.create",
                                               "name": "a", "installer_ttl_days": True})


def test_user_store(tmp_path):
    layout = Layout.for_root(tmp_path)
    assert api.add_user(layout, "alice", "operator", "pw-1") is True
    assert api.add_user(layout, "alice", "operator", "pw-2") is False  # password only
    assert api.add_user(layout, "bob", "viewer", "pw-3") is True
    assert stat.S_IMODE(os.stat(layout.api_users_file).st_mode) == 0o600
    text = layout.api_users_file.read_text()
    assert "pw-2" not in text and text.count("$6$") == 2
    auth = api.external_auth(layout)["file"]
    assert auth["^filetype"] == "htpasswd"
    assert auth["bob"] == [{"@runner": sorted(api.VIEWER_FUNCTIONS)}]
    api.remove_user(layout, "bob")
    assert "bob" not in api.external_auth(layout)["file"]
    for bad in ("*", "ops%", "a:b", "Alice", ""):
        with pytest.raises(ValueError):
            api.add_user(layout, bad, "viewer", "pw")
    with pytest.raises(ValueError):
        api.add_user(layout, "carol", "admin", "pw")
