"""The REST API's model without a master: functions served, roles, request checks, user store."""

import concurrent.futures
import json
import os
import pathlib
import re
import stat
import threading

import pytest

from kubesalt.master.api import model as api
from kubesalt.master.layout import Layout


def test_functions_served_are_kubesalts_runners_only():
    served = set(api.function_schemas())
    assert "cluster.create" in served and "node.approve" in served
    assert all(f.split(".")[0] in ("cluster", "node", "artifacts") for f in served)
    assert not any(f.startswith("operation.") for f in served)
    assert set(api.roles()["viewer"]) == set(api.VIEWER_FUNCTIONS) <= served


def test_the_readme_role_table_names_every_function_of_each_role():
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*) \|$", readme, re.M))
    for role, functions in api.roles().items():
        for function in functions:
            group, verb = function.split(".")
            row = rows[role]
            named = (f"`{function}`" in row or verb in re.split(r"[^\w]+", row)
                     and f"`{group}.*`" in row)
            assert named, f"README's {role} row does not name {function}"


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


# --- limits (issue 12) ---------------------------------------------------------------------

def test_at_most_max_calls_per_request():
    call = {"client": "runner", "fun": "cluster.list"}
    assert len(api.check_chunks([call] * api.MAX_CALLS)) == api.MAX_CALLS == 10
    with pytest.raises(api.ApiError, match="at most 10 calls per request") as err:
        api.check_chunks([call] * 11)
    assert err.value.status == 400


def _nested(depth):
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("raw,value", [
    (b'{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
    (b'"x"', "x"),
    (_nested(32).encode(), json.loads(_nested(32))),
    (json.dumps([[{"a": [1]}] * 3] * 5000).encode(), [[{"a": [1]}] * 3] * 5000),  # wide
])
def test_parse_json(raw, value):
    assert api.parse_json(raw) == value


@pytest.mark.parametrize("raw,needle", [
    (_nested(33).encode(), "nested deeper than 32 levels"),
    (('{"a": ' * 33 + "1" + "}" * 33).encode(), "nested deeper than 32 levels"),
    # json's parser recurses: RecursionError, same answer
    (_nested(1000).encode(), "nested deeper than 32 levels"),
    (_nested(200 * 1000).encode(), "nested deeper than 32 levels"),
    (b'{"a": 1', "Invalid JSON document"),
    (b'{"a": "\x80"}', "cannot be read as application/json"),
])
def test_parse_json_refuses(raw, needle):
    with pytest.raises(api.ApiError) as err:
        api.parse_json(raw)
    assert err.value.status == 400 and needle in err.value.message


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _fail(throttle, user, address="10.0.0.1"):
    assert throttle.admit(user, address) == 0
    return throttle.failed(user, address)


def test_throttle_per_user_sliding_window_and_backoff():
    clock = Clock()
    throttle = api.LoginThrottle(clock=clock)
    for _ in range(4):
        _fail(throttle, "alice")
        clock.now += 10
    # 4 failures in 40 s; the first leaves the window at 60 s: still 4 at 61 s
    clock.now = 1061
    _fail(throttle, "alice")
    assert throttle.admit("alice", "10.0.0.1") == 0  # 4 in the window (10..)
    throttle.abandoned("alice", "10.0.0.1")
    _fail(throttle, "alice")  # the 5th within 60 s
    assert throttle.admit("alice", "10.0.0.1") == 60
    assert throttle.admit("alice", "10.0.0.2") == 60  # the name, from anywhere
    assert throttle.admit("bob", "10.0.0.1") == 0  # others are not slowed
    throttle.succeeded("bob", "10.0.0.1")
    # a guess that fails once the wait is over doubles the next wait, up to max_delay
    wait = 60
    for delay in (120, 240, 480, 900, 900):
        clock.now += wait
        _fail(throttle, "alice")
        clock.now += 1
        wait = throttle.admit("alice", "10.0.0.1")
        assert wait == delay - 1
    # less than a window after the wait, a failure still adds to the count
    clock.now += wait + 59
    _fail(throttle, "alice")
    assert throttle.admit("alice", "10.0.0.1") == 900
    # forgotten once a window has passed after the wait without another failure
    clock.now += 900 + 60
    for _ in range(4):
        _fail(throttle, "alice")
    assert throttle.admit("alice", "10.0.0.1") == 0


def test_throttle_success_forgets_the_name_not_the_address():
    clock = Clock()
    throttle = api.LoginThrottle(clock=clock)
    for i in range(4):
        _fail(throttle, "alice")
        _fail(throttle, f"guess{i}")
    assert throttle.admit("alice", "10.0.0.1") == 0
    throttle.succeeded("alice", "10.0.0.1")
    for _ in range(4):
        _fail(throttle, "alice")  # the name starts again from 0
    assert throttle.admit("alice", "10.0.0.1") == 0
    throttle.abandoned("alice", "10.0.0.1")
    for i in range(12 - 4):
        _fail(throttle, f"other{i}")  # the address: 8 + 4 + 8 = 20 failures
    assert throttle.admit("carol", "10.0.0.1") == 60
    assert throttle.admit("carol", "10.0.0.9") == 0


def test_throttle_counts_attempts_in_flight():
    """Parallel guesses may not all be checked before the first failure is recorded."""
    throttle = api.LoginThrottle(clock=Clock())
    assert [throttle.admit("alice", f"10.0.0.{i}") for i in range(6)] == [0] * 5 + [1]
    for i in range(5):
        throttle.failed("alice", f"10.0.0.{i}")
    assert throttle.admit("alice", "10.0.0.7") == 60
    # an attempt that ends without a verdict (master down) does not count
    assert throttle.admit("bob", "10.0.0.1") == 0
    throttle.abandoned("bob", "10.0.0.1")
    assert [throttle.admit("bob", "10.0.0.1") for _ in range(5)] == [0] * 5


def test_throttle_is_shared_by_threads():
    throttle = api.LoginThrottle()
    barrier = threading.Barrier(40)

    def attempt(i):
        barrier.wait()
        if throttle.admit("alice", f"10.0.{i}.1"):
            return "refused"
        throttle.failed("alice", f"10.0.{i}.1")
        return "failed"

    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        outcomes = list(pool.map(attempt, range(40)))
    assert outcomes.count("failed") == 5 and outcomes.count("refused") == 35


def test_throttle_memory_is_bounded():
    clock = Clock()
    throttle = api.LoginThrottle(max_keys=100, clock=clock)
    for i in range(1000):
        _fail(throttle, f"user{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(throttle._records) <= 100
    clock.now += 61  # all of them idle now: the next new key sweeps them out
    _fail(throttle, "late", "10.9.9.9")
    assert sorted(throttle._records) == [("address", "10.9.9.9"), ("user", "late")]
