"""What an operator carries to an offline controller host: kubesalt and every dependency as
wheels, built on this machine (which reaches the package index; lab nodes never do).

The dependencies' wheels are cached under the lab's cache, keyed by what decides them
(setup.cfg, pyproject.toml and this Python's version): building them takes a minute, and they
change only with those. kubesalt's own wheel is built fresh every time from the checkout, so a
lab node runs the code under test.
"""

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import rootfs

REPO = Path(__file__).resolve().parents[2]
DECIDING_FILES = ("setup.cfg", "pyproject.toml")
# What a wheel is built from: the package directories setup.cfg maps and the metadata files.
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "master", "minion_bootstrap",
           "runners", "modules", "states", "pillar")


def _key():
    digest = hashlib.sha256(sys.version.encode())
    for name in DECIDING_FILES:
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()[:16]


def pip_wheel(dest, source, python="python3"):
    """The README's command that builds the wheelhouse (its "Production controller host")."""
    return [python, "-m", "pip", "wheel", "--wheel-dir", str(dest), str(source)]


def _pip_wheel(dest, *args):
    """pip wheel of a clean copy of the checkout: setuptools' build/ in the checkout keeps
    files deleted since, and they would be packed too."""
    with tempfile.TemporaryDirectory(prefix="kubesalt-src-") as source:
        for name in SOURCES:
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, Path(source) / name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(REPO / name, Path(source) / name)
        proc = subprocess.run([*pip_wheel(dest, source, python=sys.executable), "--quiet",
                               *args], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"pip wheel failed: {proc.stderr.strip()[-2000:]}")


def dependencies():
    """The cached directory of kubesalt's dependencies' wheels (built if missing)."""
    target = rootfs.CACHE / "wheelhouse" / _key()
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        _pip_wheel(work)
        for own in work.glob("kubesalt-*.whl"):
            own.unlink()
        (work / ".complete").write_text("")
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def own_wheel(dest):
    """kubesalt's own wheel, fresh from this checkout, into `dest`; returns its path.
    Without build isolation: setuptools comes from this venv, no index is asked."""
    _pip_wheel(dest, "--no-deps", "--no-build-isolation")
    [wheel] = Path(dest).glob("kubesalt-*.whl")
    return wheel


def build(dest):
    """`dest` filled with kubesalt's wheel, fresh from this checkout, and its dependencies';
    returns `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for wheel in dependencies().glob("*.whl"):
        shutil.copy2(wheel, dest / wheel.name)
    own_wheel(dest)
    return dest
