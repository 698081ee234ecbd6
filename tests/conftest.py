"""Fixtures every kind of test may use: a private PostgreSQL server, and state directories
whose records are in SQLite or in PostgreSQL (tests of the store run against both)."""

import os

import pytest

from kubesalt.master.inventory.storage import location, postgresql
from tests import postgres


@pytest.fixture(scope="session")
def postgres_server():
    bindir = postgres.find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL too: {postgres.MISSING}")
        pytest.skip(postgres.MISSING)
    with postgres.running(bindir) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def records_dir(request, tmp_path):
    """A controller's state directory whose records are in each database in turn (a new
    empty PostgreSQL database each time)."""
    directory = tmp_path / "state"
    if request.param == "sqlite":
        yield directory
        return
    server = request.getfixturevalue("postgres_server")
    directory.mkdir(mode=0o700)
    url = server.url(server.create_database(), password=False)
    location.choose(directory, url)
    yield directory
    postgresql.close_idle(url)  # this test's database is not used again
