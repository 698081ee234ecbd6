"""Builds `conjurer` as one self-contained executable file (a zipapp) for nodes that have only
Python 3: the minion_bootstrap package and a __main__ that checks the Python version, then
calls its CLI."""

import io
import os
import zipfile
from pathlib import Path

from kubesalt import minion_bootstrap

SHEBANG = b"#!/usr/bin/env python3\n"
MIN_PYTHON = (3, 8)
# The zipapp's first code runs on whatever `python3` a node has, so it is written for every
# Python that might start it (2.7 and 3.x alike: no f-strings, nothing newer than %-format)
# and checks the version before it imports the package, whose syntax needs 3.8: an older
# Python would otherwise die on a SyntaxError deep inside the zip that says nothing useful.
MAIN = """\
import sys


def _os_release():
    values = {}
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip('"')
    except (IOError, OSError):
        pass
    return values


def _install_hint(release):
    family = (release.get("ID", "") + " " + release.get("ID_LIKE", "")).split()
    major = release.get("VERSION_ID", "").split(".")[0]
    if set(family) & set(["rhel", "centos", "fedora", "rocky", "almalinux"]):
        if major == "8":
            return ("On RHEL/CentOS 8: dnf install python38 (or python39), then run: "
                    "python3.8 %s")
        if major == "7":
            return ("On RHEL/CentOS 7: yum install rh-python38 (Software Collections), then "
                    "run: /opt/rh/rh-python38/root/usr/bin/python3.8 %s")
    return ("Install Python 3.8 or newer from the operating system's packages, then run "
            "conjurer with it: python3.X %s")


if sys.version_info[:2] < MIN_PYTHON:
    command = " ".join([sys.argv[0] or "./conjurer"] + sys.argv[1:])
    sys.stderr.write("[-] conjurer needs Python %s or newer; this is %s (%s). %s\\n" % (
        ".".join(str(part) for part in MIN_PYTHON),
        ".".join(str(part) for part in sys.version_info[:3]), sys.executable or "python",
        _install_hint(_os_release()) % command))
    sys.exit(2)

from minion_bootstrap.cli import main  # noqa: E402 - only once the version is known good

sys.exit(main())
""".replace("MIN_PYTHON", repr(MIN_PYTHON))


def build(dest):
    """Write the zipapp to `dest` (mode 0755). Byte-identical for identical sources."""
    source = Path(minion_bootstrap.__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*.py")):
            info = zipfile.ZipInfo(f"minion_bootstrap/{path.relative_to(source).as_posix()}",
                                   date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
        info = zipfile.ZipInfo("__main__.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        archive.writestr(info, MAIN)
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(SHEBANG + buffer.getvalue())
    os.chmod(tmp, 0o755)  # noqa: S103 - an executable the operator copies to nodes
    os.replace(tmp, dest)
    return dest
