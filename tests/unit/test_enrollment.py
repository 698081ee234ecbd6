import base64

import pytest

from kubesalt.master import enrollment

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
