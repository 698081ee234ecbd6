"""Salt's key store read as kubesalt's approval record (master/inventory/keys.py): keys are
told apart by their SubjectPublicKeyInfo's SHA-256 however their file is written."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.inventory import keys


@pytest.fixture(scope="module")
def public_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()


def _pem(key, fmt):
    return key.public_bytes(serialization.Encoding.PEM, fmt).decode()


def test_a_stored_key_has_the_digest_of_its_parsed_key_in_either_pem(public_key):
    spki = _pem(public_key, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1 = _pem(public_key, serialization.PublicFormat.PKCS1)  # "RSA PUBLIC KEY": parsed
    expected = keys.spki_sha256(spki)
    assert keys.stored_key_sha256(spki) == expected
    assert keys.stored_key_sha256(spki.replace("\n", "\r\n") + "\n\n") == expected
    assert keys.stored_key_sha256(pkcs1) == expected


@pytest.mark.parametrize("text", ["", "junk", "-----BEGIN PUBLIC KEY-----\n!!!\n"
                                  "-----END PUBLIC KEY-----"])
def test_what_is_no_key_is_refused(text):
    with pytest.raises(ValueError):
        keys.stored_key_sha256(text)


def test_key_states_reads_every_directory_and_skips_what_is_not_a_key_file(tmp_path,
                                                                           public_key):
    spki = _pem(public_key, serialization.PublicFormat.SubjectPublicKeyInfo)
    for directory, name in (("minions", "a"), ("minions_pre", "b"), ("minions_rejected", "a")):
        (tmp_path / directory).mkdir(exist_ok=True)
        (tmp_path / directory / name).write_text(spki)
    (tmp_path / "minions" / ".hidden").write_text(spki)
    (tmp_path / "minions" / "sub").mkdir()
    (tmp_path / "minions" / "broken").write_text("junk")
    digest = keys.spki_sha256(spki)
    assert keys.key_states(tmp_path) == {
        "a": [("accepted", digest), ("rejected", digest)],
        "b": [("pending", digest)], "broken": [("accepted", None)]}
