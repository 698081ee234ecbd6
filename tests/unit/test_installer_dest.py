"""Installer credentials go only where they should: never through a planted link, never
into a system directory, every bad destination a `dest` error with nothing issued; a rotation
that revokes a set issued a moment before says so."""

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kubesalt.master.inventory import clusters
from kubesalt.master.inventory.store import Store
from kubesalt.master.errors import Refused

SETTINGS = {"advertise": "10.77.0.1", "publish_port": 4505, "ret_port": 4506,
            "https_port": 4507}


def fields(exc):
    return [e["field"] for e in exc.value.errors]


# ---- installer destinations ---------------------------------------------------------------

@pytest.fixture
def issuing(tmp_path):
    store = Store(tmp_path / "state")
    clusters.create(store, "edge1")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    master_pub = tmp_path / "master.pub"
    master_pub.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    def issue(dest, **kwargs):
        return clusters.installer(store, SETTINGS, tmp_path / "pki", master_pub, "edge1",
                                  dest, **kwargs)
    issue.store = store
    return issue


def _refused_dest(issue, dest):
    with pytest.raises(Refused) as exc:
        issue(dest)
    assert fields(exc) == ["dest"]
    assert issue.store.installers("edge1") == []  # nothing issued
    return exc.value.errors[0]["message"]


def test_a_planted_symlink_is_replaced_not_followed(issuing, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "edge1.pem").symlink_to(victim)
    (dest / "edge1-passphrase.txt").symlink_to(tmp_path / "nowhere")
    result = issuing(str(dest))
    assert victim.read_text() == "precious\n" and victim.stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / "nowhere").exists()
    for name in ("edge1.pem", "edge1-passphrase.txt"):
        path = dest / name
        assert not path.is_symlink() and path.stat().st_mode & 0o777 == 0o600
    assert Path(result["creds_file"]) == dest / "edge1.pem"
    assert sorted(p.name for p in dest.iterdir()) == ["conjurer", "edge1-passphrase.txt",
                                                       "edge1.pem"]


@pytest.mark.parametrize("dest", ["/etc", "/", "/usr/local/x", "/proc/self", "/root"])
def test_system_directories_are_refused(issuing, dest):
    assert "system directory" in _refused_dest(issuing, dest)


def test_an_existing_file_is_refused(issuing, tmp_path):
    (tmp_path / "afile").write_text("x")
    assert "not a directory" in _refused_dest(issuing, str(tmp_path / "afile"))


def test_a_missing_parent_is_refused(issuing, tmp_path):
    assert "does not exist" in _refused_dest(issuing, str(tmp_path / "no" / "such"))
    assert not (tmp_path / "no").exists()


def test_a_directory_in_place_of_a_file_is_refused(issuing, tmp_path):
    dest = tmp_path / "out"
    (dest / "edge1.pem").mkdir(parents=True)
    assert "is a directory" in _refused_dest(issuing, str(dest))
    assert sorted(p.name for p in dest.iterdir()) == ["edge1.pem"]  # no staging left


def test_a_new_destination_is_private(issuing, tmp_path):
    issuing(str(tmp_path / "fresh"))
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o700


def test_a_rotation_that_revokes_a_set_just_issued_says_so(issuing, tmp_path):
    first = issuing(str(tmp_path / "a"), rotate=True)
    assert "warning" not in first
    second = issuing(str(tmp_path / "b"), rotate=True)
    assert second["revoked"] == [first["serial"]]
    assert first["serial"] in second["warning"]
