import base64
import copy
import time
import types

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.endpoint import enrollment, node_facts
from kubesalt.master.trust import pki
from kubesalt.master.inventory.store import Store
from kubesalt.minion_bootstrap import credentials as creds
from tests.specs import cluster_spec

REQUEST = {"purpose": "check", "cluster": "c", "node_id": "node-abcd-10-0-0-1-c",
           "serial": "01", "issued_at": 0}
SIGNATURE = base64.b64encode(b"sig").decode()


@pytest.mark.parametrize("payload", [
    {},
    {"request": "text", "signature": SIGNATURE, "installer_cert": "x"},
    {"request": {k: v for k, v in REQUEST.items() if k != "serial"}, "signature": SIGNATURE,
     "installer_cert": "x"},
    {"request": dict(REQUEST, issued_at="soon"), "signature": SIGNATURE, "installer_cert": "x"},
    {"request": REQUEST, "signature": "not base64!", "installer_cert": "x"},
    {"request": REQUEST, "signature": SIGNATURE},
])
def test_check_refuses_malformed_bodies_naming_the_fields(payload):
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.check(None, None, payload)
    assert refused.value.code == 400
    assert "installer_cert" in str(refused.value)


def test_an_enrollment_is_not_a_check_and_a_check_is_not_an_enrollment():
    enroll_request = {k: v for k, v in REQUEST.items() if k != "purpose"}
    enroll_request["minion_pub_sha256"] = "00"
    with pytest.raises(enrollment.EnrollmentRefused, match="purpose"):
        enrollment.check(None, None, {"request": enroll_request, "signature": SIGNATURE,
                                      "installer_cert": "x"})
    with pytest.raises(enrollment.EnrollmentRefused, match="purpose"):
        enrollment.check(None, None, {"request": dict(REQUEST, purpose="enroll"),
                                      "signature": SIGNATURE, "installer_cert": "x"})
    with pytest.raises(enrollment.EnrollmentRefused, match="minion_pub"):
        enrollment.enroll(None, None, {"request": REQUEST, "signature": SIGNATURE,
                                       "installer_cert": "x", "minion_pub": "k"}, "10.0.0.1")


# ---- with real credentials: conjurer's requests against a real store and CA -----------------

NODE_ID = "node-abcd-10-0-0-1-edge1"


@pytest.fixture(scope="module")
def credentials(tmp_path_factory):
    """Installer credentials as conjurer opens them, issued by a controller CA in `pki`."""
    base = tmp_path_factory.mktemp("controller")
    ca = pki.ensure_ca(base / "pki")
    installer = pki.issue_installer(ca, "edge1", 30)
    passphrase = creds.generate_passphrase()
    controller = {"address": "127.0.0.1", "publish_port": 4505, "ret_port": 4506,
                  "https_port": 4507, "master_finger": "ab:cd"}
    text = creds.seal("edge1", controller, ca.cert_pem, installer.cert_pem, installer.serial,
                      installer.not_after, installer.private_numbers, passphrase)
    minion_pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() \
        .public_bytes(serialization.Encoding.PEM,
                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return types.SimpleNamespace(pki_dir=base / "pki", installer=installer,
                                 opened=creds.open_credentials(text, passphrase, "edge1"),
                                 minion_pub=minion_pub)


@pytest.fixture
def controller(credentials, records_dir, tmp_path):
    """(store, layout) of a controller with cluster edge1 and the installer recorded."""
    store = Store(records_dir)
    store.create_cluster("edge1", cluster_spec(name="edge1", auto_approve=False))
    installer = credentials.installer
    store.add_installer("edge1", installer.serial, time.time() - 60,
                        installer.not_after.timestamp())
    layout = types.SimpleNamespace(kubesalt_pki=credentials.pki_dir, pki_dir=tmp_path / "salt")
    return store, layout


def enroll_payload(credentials, now=None, **changes):
    """The body conjurer posts; `changes` edit the request before it is signed."""
    opened = credentials.opened
    request, signature = opened.enrollment_request(NODE_ID, credentials.minion_pub,
                                                   time.time() if now is None else now)
    if changes:
        request.update(changes)
        signature = base64.b64encode(opened.sign(creds.canonical_json(request))).decode()
    return {"request": request, "signature": signature,
            "installer_cert": opened.installer_cert_pem, "minion_pub": credentials.minion_pub}


def check_payload(credentials, now=None):
    request, signature = credentials.opened.check_request(NODE_ID,
                                                          time.time() if now is None else now)
    return {"request": request, "signature": signature,
            "installer_cert": credentials.opened.installer_cert_pem}


def test_conjurers_enrollment_is_accepted(credentials, controller):
    store, layout = controller
    answer = enrollment.enroll(store, layout, enroll_payload(credentials), "10.0.0.1")
    assert (answer["node_id"], answer["status"]) == (NODE_ID, "DISCOVERED")


@pytest.mark.parametrize("issued_at", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999",
                                       str(int(time.time())), 10 ** 400, True],
                         ids=["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "digits",
                              "400-digits", "bool"])
def test_issued_at_must_be_a_finite_number(credentials, controller, issued_at):
    # each request is signed with the real installer key: only the value is wrong
    store, layout = controller
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.enroll(store, layout, enroll_payload(credentials, issued_at=issued_at),
                          "10.0.0.1")
    assert (refused.value.code, refused.value.reason) == (400, "malformed")
    assert "finite number" in str(refused.value)
    assert store.list_nodes() == []


@pytest.mark.parametrize("issued_at", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_non_finite_float_is_refused_too(credentials, controller, issued_at):
    store, layout = controller
    payload = enroll_payload(credentials)
    payload["request"]["issued_at"] = issued_at  # as json.loads makes of NaN and Infinity
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.enroll(store, layout, payload, "10.0.0.1")
    assert refused.value.code == 400
    check = check_payload(credentials)
    check["request"]["issued_at"] = issued_at
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.check(store, layout, check)
    assert refused.value.code == 400


def test_an_accepted_enrollment_is_not_accepted_again(credentials, controller):
    store, layout = controller
    payload = enroll_payload(credentials)
    enrollment.enroll(store, layout, payload, "10.0.0.1")
    updated = store.get_node(NODE_ID)["updated_at"]
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.enroll(store, layout, copy.deepcopy(payload), "10.0.0.9")
    assert (refused.value.code, refused.value.reason) == (403, "replay")
    assert store.get_node(NODE_ID)["updated_at"] == updated
    assert store.get_node(NODE_ID)["address"] == "10.0.0.1"


def test_the_replay_memory_survives_a_restart(credentials, controller, tmp_path):
    store, layout = controller
    payload = enroll_payload(credentials)
    enrollment.enroll(store, layout, payload, "10.0.0.1")
    restarted = Store(tmp_path / "state")
    with pytest.raises(enrollment.EnrollmentRefused, match="already used"):
        enrollment.enroll(restarted, layout, payload, "10.0.0.1")


def test_conjurers_retry_and_rerun_are_new_requests(credentials, controller):
    # conjurer signs each request with the second it is sent: its check, its enrollment, a
    # rerun on the enrolled node a second later and the rerun's check are all different
    store, layout = controller
    now = int(time.time())
    assert enrollment.check(store, layout, check_payload(credentials, now))["ok"] is True
    enrollment.enroll(store, layout, enroll_payload(credentials, now), "10.0.0.1")
    assert enrollment.check(store, layout, check_payload(credentials, now + 1))["ok"] is True
    again = enrollment.enroll(store, layout, enroll_payload(credentials, now + 1), "10.0.0.1")
    assert again["status"] == "DISCOVERED"


def test_an_accepted_check_is_not_accepted_again(credentials, controller):
    store, layout = controller
    payload = check_payload(credentials)
    assert enrollment.check(store, layout, payload)["ok"] is True
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.check(store, layout, payload)
    assert (refused.value.code, refused.value.reason) == (403, "replay")


def test_a_forged_request_does_not_use_up_the_real_one(credentials, controller):
    store, layout = controller
    payload = enroll_payload(credentials)
    forged = copy.deepcopy(payload)
    forged["signature"] = base64.b64encode(b"\0" * 256).decode()
    with pytest.raises(enrollment.EnrollmentRefused, match="signature"):
        enrollment.enroll(store, layout, forged, "10.6.6.6")
    assert enrollment.enroll(store, layout, payload, "10.0.0.1")["node_id"] == NODE_ID


def test_a_request_is_forgotten_once_outside_the_clock_window(credentials, controller):
    store, layout = controller
    now = time.time()
    payload = enroll_payload(credentials, now)
    enrollment.enroll(store, layout, payload, "10.0.0.1", now=now)
    later = now + enrollment.REPLAY_MEMORY + 1
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.enroll(store, layout, payload, "10.0.0.1", now=later)
    assert refused.value.reason == "clock"
    with store.reading() as conn:
        assert conn.execute("SELECT count(*) FROM signed_requests").fetchone()[0] == 1
    enrollment.check(store, layout, check_payload(credentials, later), now=later)
    with store.reading() as conn:  # the first one went when the next one was recorded
        assert conn.execute("SELECT count(*) FROM signed_requests").fetchone()[0] == 1


# ---- the facts conjurer reports -----------------------------------------------------------

REPORTED = {"os": "debian", "osrelease": "12", "kernelrelease": "6.1.0-18-amd64",
            "cpuarch": "x86_64", "num_cpus": 4, "mem_total": 7936,
            "kubesalt_storage_candidates": ["/dev/sdb"],
            "kubesalt_interfaces": [{"name": "eth0", "ipv4": ["10.0.0.1"]}]}


def test_reported_facts_are_stored_with_the_enrollment(credentials, controller):
    store, layout = controller
    opened = credentials.opened
    request, signature = opened.enrollment_request(NODE_ID, credentials.minion_pub,
                                                   time.time(), facts=REPORTED)
    payload = {"request": request, "signature": signature,
               "installer_cert": opened.installer_cert_pem, "minion_pub": credentials.minion_pub}
    enrollment.enroll(store, layout, payload, "10.0.0.1")
    assert store.get_node(NODE_ID)["reported_facts"] == REPORTED


def test_reported_facts_are_signed(credentials, controller):
    store, layout = controller
    payload = enroll_payload(credentials)
    payload["request"]["facts"] = REPORTED  # added after signing
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.enroll(store, layout, payload, "10.0.0.1")
    assert refused.value.reason == "bad-signature"


def test_facts_outside_their_shape_are_left_out_not_refused():
    assert node_facts.clean(REPORTED) == REPORTED
    assert node_facts.clean("junk") == {} and node_facts.clean(None) == {}
    messy = dict(REPORTED, os="x" * 500, num_cpus=True, mem_total=-1, cpuarch=7,
                 kernelrelease="a\nb", extra="dropped",
                 kubesalt_storage_candidates=["/etc/passwd", "/dev/sdc", 5, "/dev/../x y"],
                 kubesalt_interfaces=[{"name": "eth0", "ipv4": ["10.0.0.1", "300.1.1.1", 5]},
                                      {"name": "bad name!"}, "eth9",
                                      *({"name": f"e{i}", "ipv4": []} for i in range(200))])
    cleaned = node_facts.clean(messy)
    assert set(cleaned) == {"osrelease", "kubesalt_storage_candidates", "kubesalt_interfaces"}
    assert cleaned["kubesalt_storage_candidates"] == ["/dev/sdc"]
    assert cleaned["kubesalt_interfaces"][0] == {"name": "eth0", "ipv4": ["10.0.0.1"]}
    assert len(cleaned["kubesalt_interfaces"]) <= node_facts.MAX_ITEMS


# ---- the node id: asked before conjurer changes anything ------------------------------------

def _new_pub():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() \
        .public_bytes(serialization.Encoding.PEM,
                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _key_in_store(layout, state_dir, pub, node_id=NODE_ID):
    """A key under `node_id` in the master's key store, as Salt writes one."""
    directory = layout.pki_dir / state_dir
    directory.mkdir(parents=True, exist_ok=True)
    (directory / node_id).write_text(pub)


def _check(credentials, held=None, **changes):
    request, signature = credentials.opened.check_request(NODE_ID, time.time(), held)
    if changes:
        request.update(changes)
        signature = base64.b64encode(credentials.opened.sign(
            creds.canonical_json(request))).decode()
    payload = {"request": request, "signature": signature,
               "installer_cert": credentials.opened.installer_cert_pem}
    if held:
        payload["minion_pub"] = held
    return payload


def test_the_check_answers_the_clusters_os(credentials, controller):
    store, layout = controller
    answer = enrollment.check(store, layout, _check(credentials))
    assert answer == {"ok": True, "cluster": "edge1", "os": store.cluster("edge1").spec.os}


@pytest.mark.parametrize("state_dir,state", [("minions_pre", "pending"),
                                              ("minions", "accepted"),
                                              ("minions_rejected", "rejected")])
def test_another_minions_key_under_the_id_is_named_not_whose(credentials, controller,
                                                             state_dir, state):
    store, layout = controller
    store.create_cluster("north", cluster_spec(name="north"))
    # a record of another cluster under this id says nothing to a node of edge1
    store.enroll_node(NODE_ID, "north", "00" * 32, "s", "10.0.0.9")
    _key_in_store(layout, state_dir, _new_pub())
    for held in (None, credentials.minion_pub):
        with pytest.raises(enrollment.EnrollmentRefused) as refused:
            enrollment.check(store, layout, _check(credentials, held))
        assert (refused.value.code, refused.value.reason) == (409, "id-in-use")
        text = str(refused.value)
        assert text.startswith(f"a key with the id {NODE_ID} is already {state} on the "
                               "controller and it is not this node's")
        assert f"salt-run node.forget {NODE_ID}" in text
        assert "north" not in text and "10.0.0.9" not in text


def test_a_node_of_its_own_cluster_with_another_key_is_named(credentials, controller):
    store, layout = controller
    enrollment.enroll(store, layout, enroll_payload(credentials), "10.0.0.1")
    _key_in_store(layout, "minions", credentials.minion_pub)
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.check(store, layout, _check(credentials, held=_new_pub()))
    assert refused.value.reason == "id-in-use"
    assert str(refused.value).startswith(f"{NODE_ID} is already a node of cluster edge1 with "
                                         "another key (accepted on the controller)")
    assert f"salt-run node.remove {NODE_ID}" in str(refused.value)
    # the enrollment refuses that key with the same words
    stranger = dict(credentials.__dict__, minion_pub=_new_pub())
    with pytest.raises(enrollment.EnrollmentRefused) as at_enroll:
        enrollment.enroll(store, layout, enroll_payload(types.SimpleNamespace(**stranger)),
                          "10.0.0.1")
    assert (at_enroll.value.code, str(at_enroll.value)) == (409, str(refused.value))


@pytest.mark.parametrize("state_dir", ["minions_pre", "minions"])
def test_a_rerun_with_the_key_it_holds_passes(credentials, controller, state_dir):
    store, layout = controller
    enrollment.enroll(store, layout, enroll_payload(credentials), "10.0.0.1")
    _key_in_store(layout, state_dir, credentials.minion_pub)
    assert enrollment.check(store, layout, _check(credentials, credentials.minion_pub))["ok"]


def test_a_rejected_node_is_told_who_can_let_it_in_again(credentials, controller):
    store, layout = controller
    _key_in_store(layout, "minions_rejected", credentials.minion_pub)
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.check(store, layout, _check(credentials, credentials.minion_pub))
    assert (refused.value.code, refused.value.reason) == (403, "rejected")
    assert f"salt-run node.remove {NODE_ID}" in str(refused.value)


def test_two_checks_in_the_same_second_are_two_requests(credentials, controller):
    """conjurer -precheck and then conjurer, or a refused run and the next one, may ask
    within one second: neither is a replay of the other."""
    store, layout = controller
    now = time.time()
    for _ in range(2):
        request, signature = credentials.opened.check_request(NODE_ID, now)
        payload = {"request": request, "signature": signature,
                   "installer_cert": credentials.opened.installer_cert_pem}
        assert enrollment.check(store, layout, payload, now=now)["ok"] is True
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.check(store, layout, payload, now=now)
    assert refused.value.reason == "replay"


def test_a_conjurer_that_names_no_held_key_is_not_asked_about_its_id(credentials, controller):
    """conjurers older than held_pub_sha256 keep working; their enrollment refuses a second
    key as it always did."""
    store, layout = controller
    _key_in_store(layout, "minions_pre", _new_pub())
    request, signature = credentials.opened.check_request(NODE_ID, time.time())
    del request["held_pub_sha256"]
    signature = base64.b64encode(credentials.opened.sign(creds.canonical_json(request))).decode()
    payload = {"request": request, "signature": signature,
               "installer_cert": credentials.opened.installer_cert_pem}
    assert enrollment.check(store, layout, payload)["ok"] is True


def test_the_held_key_must_be_the_one_signed_for(credentials, controller):
    store, layout = controller
    payload = _check(credentials, credentials.minion_pub)
    payload["minion_pub"] = _new_pub()
    with pytest.raises(enrollment.EnrollmentRefused) as refused:
        enrollment.check(store, layout, payload)
    assert (refused.value.code, refused.value.reason) == (400, "malformed")
    assert "held_pub_sha256" in str(refused.value)


@pytest.mark.parametrize(("peer", "recorded"), [("127.0.0.1", "10.0.0.1"),
                                                 ("192.0.2.7", "192.0.2.7")],
                         ids=["relayed", "direct"])
def test_a_node_behind_the_agent_gateway_is_recorded_at_its_own_address(
        credentials, controller, peer, recorded):
    # Through the gateway every request comes from the controller itself; the node's own
    # address is the one its (signed, verified) id names. A direct request keeps its peer.
    store, layout = controller
    enrollment.enroll(store, layout, enroll_payload(credentials), peer,
                      relays={"127.0.0.1", "198.51.100.1"})
    assert store.get_node(NODE_ID)["address"] == recorded


@pytest.mark.parametrize(("node_id", "cluster", "address"), [
    ("node-1a2b3c4d-10-77-0-11-edge1", "edge1", "10.77.0.11"),
    ("node-1a2b3c4d-10-77-0-11-edge-1-a", "edge-1-a", "10.77.0.11"),
    ("node-1a2b3c4d-10-77-11-edge1", "edge1", None),
])
def test_the_address_a_node_id_names(node_id, cluster, address):
    assert enrollment.named_address(node_id, cluster) == address
