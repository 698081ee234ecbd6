"""Builds `conjurer` as one self-contained executable file (a zipapp) for nodes that have only
Python 3: the minion_bootstrap package and a __main__ that calls its CLI."""

import io
import os
import zipfile
from pathlib import Path

from kubesalt import minion_bootstrap

SHEBANG = b"#!/usr/bin/env python3\n"
MAIN = "import sys\nfrom minion_bootstrap.cli import main\nsys.exit(main())\n"


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
