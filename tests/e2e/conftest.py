import os
import shutil
import tempfile

import pytest

from tests.integration.controller import Controller
from tests.labkit import Lab, rootfs

pytestmark = pytest.mark.lab


def _lab_missing():
    if os.geteuid() != 0:
        return "the lab needs root"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"the lab needs {tool} (apt-get install systemd-container debootstrap)"
    return None


LAB_NODES = int(os.environ.get("KUBESALT_LAB_NODES", "4"))


@pytest.fixture(scope="session")
def lab():
    reason = _lab_missing()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    lab.down()  # whatever a crashed run left
    rootfs.prepare()
    lab.up(LAB_NODES)
    yield lab
    lab.down()


@pytest.fixture(scope="session")
def lab_controller(lab):
    """A controller listening on the lab bridge, with the node-agent bundle in its store."""
    root = tempfile.mkdtemp(prefix="kslc-")
    ctl = Controller(root, interface=lab.bridge_address)
    ctl.start_for_lab(lab)
    yield ctl
    ctl.stop()
    shutil.rmtree(root, ignore_errors=True)
