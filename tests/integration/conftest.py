import shutil
import tempfile

import pytest

from .controller import Controller


@pytest.fixture(scope="module")
def controller():
    # A short root: Salt's IPC socket paths must stay under the 107-byte Unix limit.
    root = tempfile.mkdtemp(prefix="ksc-")
    ctl = Controller(root)
    ctl.init()
    ctl.start()
    yield ctl
    ctl.stop()
    shutil.rmtree(root, ignore_errors=True)
