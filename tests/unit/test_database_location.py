"""Which database holds the records: the URL is checked, shown without its password, and
kept where only root reads it."""

import os

import pytest

from kubesalt.master.inventory.storage import location


@pytest.mark.parametrize("url,expected", [
    ("postgresql://ks:s3cr%40t@db:5432/ks", "postgresql://ks:***@db:5432/ks"),
    ("postgresql://ks@/ks?host=/run/pg&password=s3cr%40t", "postgresql://ks@/ks?host=/run/pg&password=***"),
    ("postgresql://ks@db/ks", "postgresql://ks@db/ks"),
])
def test_a_url_is_shown_without_its_password(url, expected):
    assert location.shown(url) == expected
    message = f"failed for {url} and s3cr@t"
    assert "s3cr" not in location.hide(message, url) or location.password(url) is None


@pytest.mark.parametrize("url,says", [
    ("mysql://ks:pw@db/ks", "is not a PostgreSQL URL"),
    ("db.example:5432", "is not a PostgreSQL URL"),
    ("postgresql://ks:pw@db", "names no database"),
])
def test_anything_but_a_postgresql_url_naming_a_database_is_refused(url, says):
    with pytest.raises(location.BadURL, match=says) as refused:
        location.check_url(url)
    assert "pw@" not in str(refused.value)
    assert location.EXAMPLE in str(refused.value)


def test_the_chosen_database_is_kept_in_a_file_only_its_owner_reads(tmp_path):
    state = tmp_path / "state"
    assert location.configured(state) is None
    location.choose(state, "postgresql://ks:pw@db/ks")
    assert location.configured(state) == "postgresql://ks:pw@db/ks"
    assert os.stat(state / location.FILE).st_mode & 0o777 == 0o600
    assert os.stat(state).st_mode & 0o777 == 0o700


def test_a_password_from_a_file_joins_the_url_encoded():
    assert location.with_password("postgresql://ks@db:5432/ks", "p@ss:w/rd") == \
        "postgresql://ks:p%40ss%3Aw%2Frd@db:5432/ks"
    assert location.password(location.with_password("postgresql://ks@db/ks", "p@ss")) == "p@ss"
    for url, secret, says in [("postgresql://ks:pw@db/ks", "x", "not both"),
                              ("postgresql://db/ks", "x", "names no user"),
                              ("postgresql://ks@db/ks", "", "empty")]:
        with pytest.raises(location.BadURL, match=says):
            location.with_password(url, secret)
