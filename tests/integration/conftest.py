
import pytest

from .controller import running


@pytest.fixture(scope="module")
def controller():
    with running("ksc-") as ctl:
        yield ctl
