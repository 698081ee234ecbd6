"""The wheel an operator installs on a controller host holds every file of the packages:
states, runners, the reactor, the engine, the netapi module, the outputter and the systemd
units are found through the installed package, never through a checkout."""

import subprocess
import zipfile
from pathlib import Path

from tests.labkit import wheelhouse

PACKAGE_DIRS = ("master", "minion_bootstrap", "runners", "modules", "states", "pillar")


def test_the_wheel_holds_every_tracked_file_of_the_packages(tmp_path):
    tracked = subprocess.run(["git", "-C", str(wheelhouse.REPO), "ls-files", *PACKAGE_DIRS],
                             capture_output=True, text=True, check=True).stdout.split()
    assert "master/systemd/kubesalt-controller.service" in tracked
    with zipfile.ZipFile(wheelhouse.own_wheel(tmp_path)) as wheel:
        packed = {name.removeprefix("kubesalt/") for name in wheel.namelist()}
    missing = sorted(path for path in tracked if path not in packed
                     and (wheelhouse.REPO / path).exists())
    assert missing == [], f"setup.cfg's package_data leaves out {missing}"
    assert not any(Path(name).suffix == ".pyc" for name in packed)
