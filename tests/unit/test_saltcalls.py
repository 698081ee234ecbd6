"""Salt's answers are checked before a verb reports success: a table of what Salt 3008.3 answers
(salt/key.py change_state and delete_key answer with glob_match of the id afterwards; the
wheel client answers an exception as text with its traceback; LocalClient answers per minion,
without the minions that did not answer), and the verb wrapper's answer when a check fails."""

import pytest

from kubesalt.master.verbs import saltcalls, support
from kubesalt.master.verbs.saltcalls import ACCEPTED, DELETED, REJECTED

TRACEBACK = ("Exception occurred in wheel key.accept: Traceback (most recent call last):\n"
             '  File "/salt/client/mixins.py", line 387, in low\n'
             "    data['return'] = func(*args, **kwargs)\n"
             "PermissionError: [Errno 13] Permission denied: '/etc/salt/pki/minions/n1'\n")
INVALID = "\nPassed invalid arguments: accept() got an unexpected keyword\n\nUsage:\nAccept..."

KEY_CHANGES = [
    # (answer, wanted, None or the message)
    ({"minions": ["n1"]}, ACCEPTED, None),
    ({"minions": ["n1"], "minions_denied": ["n1"]}, ACCEPTED, None),
    ({"minions_pre": ["n1"]}, ACCEPTED,
     "Salt's key store did not accept the key of n1: the key is pending "
     "(it answered {'minions_pre': ['n1']})"),
    ({}, ACCEPTED,
     "Salt's key store did not accept the key of n1: it holds no key of n1 (it answered {})"),
    ({"minions": ["n10"]}, ACCEPTED,
     "Salt's key store did not accept the key of n1: it holds no key of n1 "
     "(it answered {'minions': ['n10']})"),
    (TRACEBACK, ACCEPTED,
     "Salt's key store did not accept the key of n1: it answered Exception occurred in wheel "
     "key.accept: PermissionError: [Errno 13] Permission denied: "
     "'/etc/salt/pki/minions/n1'"),
    (INVALID, ACCEPTED, "Salt's key store did not accept the key of n1: it answered Passed "
                        "invalid arguments: accept() got an unexpected keyword"),
    (None, ACCEPTED, "Salt's key store did not accept the key of n1: it answered None"),
    ({"minions_rejected": ["n1"]}, REJECTED, None),
    ({"minions": ["n1"]}, REJECTED,
     "Salt's key store did not reject the key of n1: the key is accepted "
     "(it answered {'minions': ['n1']})"),
    ({}, REJECTED,
     "Salt's key store did not reject the key of n1: it holds no key of n1 (it answered {})"),
    ({}, DELETED, None),
    ({"minions": ["n2"]}, DELETED, None),
    ({"minions": ["n1"], "minions_denied": ["n1"]}, DELETED,
     "Salt's key store did not delete the key of n1: the key is accepted and denied "
     "(it answered {'minions': ['n1'], 'minions_denied': ['n1']})"),
    ("Exception occurred in wheel key.delete: Traceback (most recent call last):\n"
     "OSError: disk full", DELETED,
     "Salt's key store did not delete the key of n1: it answered Exception occurred in wheel "
     "key.delete: OSError: disk full"),
]


@pytest.mark.parametrize("answer,wanted,message", KEY_CHANGES)
def test_a_key_change_is_checked_against_the_key_stores_answer(answer, wanted, message):
    assert saltcalls.key_change_failed(answer, "n1", wanted) == message


@pytest.mark.parametrize("answer,message", [
    ({"n1": {"modules": ["kubesalt_facts"], "grains": []}}, None),
    ({"n1": {}}, None),
    ({}, "n1 did not answer saltutil.sync_all"),
    ({"n2": {"modules": []}}, "n1 did not answer saltutil.sync_all"),
    ({"n1": "'saltutil.sync_all' is not available."},
     "saltutil.sync_all failed on n1: 'saltutil.sync_all' is not available."),
    ({"n1": False}, "saltutil.sync_all failed on n1: False"),
    ("no minions", "n1 did not answer saltutil.sync_all"),
])
def test_a_sync_counts_only_when_the_node_reported_it(answer, message):
    assert saltcalls.sync_failed(answer, "n1") == message


@pytest.mark.parametrize("answer,message", [
    ({"n1": True}, None),
    ({"n1": False}, "saltutil.refresh_pillar failed on n1: it answered False"),
    ({"n1": "Minion did not return. [No response]"},
     "saltutil.refresh_pillar failed on n1: it answered Minion did not return. [No response]"),
    ({"n1": 1}, "saltutil.refresh_pillar failed on n1: it answered 1"),
    ({}, "n1 did not answer saltutil.refresh_pillar"),
    (None, "n1 did not answer saltutil.refresh_pillar"),
])
def test_a_pillar_refresh_counts_only_when_it_returned_true(answer, message):
    assert saltcalls.refresh_failed(answer, "n1") == message


def test_a_long_answer_is_cut_to_one_short_line():
    text = saltcalls.answer_text("x" * 1000 + "\nsecond line")
    assert len(text) == saltcalls.MAX_ANSWER
    assert text.endswith("...")
    assert "\n" not in text


# What a runner module holds when Salt's loader has loaded it.
__context__ = {}
__opts__ = {}
__virtualname__ = "node"


@support.verb
def approve(node):
    raise support.SaltCallFailed(saltcalls.key_change_failed({}, node, ACCEPTED))


@support.verb
def explode(node):
    raise KeyError(node)


@pytest.fixture
def master_log(monkeypatch, caplog):
    """The messages the verbs log at ERROR. Kept from the deferred handler that importing Salt
    puts on the root logger: it would print them once pytest has closed its streams."""
    monkeypatch.setattr(support.log, "propagate", False)
    __context__.clear()
    return lambda: [(r.getMessage(), r.exc_info) for r in caplog.records
                    if r.levelname == "ERROR"]


def test_a_failed_salt_call_fails_the_verb_with_its_message_and_no_traceback(master_log):
    message = ("node.approve failed: Salt's key store did not accept the key of n1: it holds no "
               "key of n1 (it answered {})")
    assert approve("n1") == {"result": False, "retcode": 1,
                             "errors": [{"field": "controller", "message": message}]}
    assert __context__["retcode"] == 1
    assert master_log() == [(message, None)]


def test_an_unexpected_error_still_fails_the_verb_with_one_line(master_log):
    assert explode("n1") == {"result": False, "retcode": 1, "errors": [{
        "field": "controller",
        "message": "node.explode failed: KeyError: 'n1'; see the master log"}]}
    assert __context__["retcode"] == 1
    assert master_log() == [("node.explode failed: KeyError: 'n1'", None)]


def test_a_refusal_keeps_its_fields_and_retcode():
    __context__.clear()
    answer = approve()
    assert (answer["retcode"], __context__["retcode"]) == (support.REFUSED, support.REFUSED)
    assert [e["field"] for e in answer["errors"]] == ["node"]
