import pytest

from .controller import Controller


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    ctl = Controller(tmp_path_factory.mktemp("controller"))
    ctl.init()
    ctl.start()
    yield ctl
    ctl.stop()
