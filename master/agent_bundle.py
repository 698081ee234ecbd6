"""The node-agent bundle: the Salt minion software nodes download from the controller.

Nodes have Python 3 and nothing else, and never reach the internet, so the controller serves a
wheelhouse (Salt at the controller's own pinned version plus its dependencies) for each
Python/architecture it supports, with a manifest of sha256 checksums. conjurer installs it into
its own virtualenv under /opt/kubesalt/salt.
"""

import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import salt.version

from kubesalt.minion_bootstrap.agent import sha256_file

MANIFEST = "manifest.json"


def python_tag(version_info=None):
    version_info = version_info or sys.version_info
    return f"cp{version_info[0]}{version_info[1]}"



def _collect_wheels(workdir, wheelhouse):
    if wheelhouse:
        wheels = sorted(Path(wheelhouse).glob("*.whl"))
        if not any(w.name.lower().startswith("salt-") for w in wheels):
            raise RuntimeError(f"{wheelhouse} has no salt wheel; put salt-"
                               f"{salt.version.__version__} and its dependencies' wheels there")
        return wheels
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir",
                    str(workdir), f"salt=={salt.version.__version__}"],
                   check=True, stdin=subprocess.DEVNULL)
    return sorted(Path(workdir).glob("*.whl"))


def _reproducible_tar(wheels, dest):
    """Same wheels give the same bytes, so a rebuild does not change the checksum."""
    with open(dest, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
        for wheel in wheels:
            info = tarfile.TarInfo(f"wheels/{wheel.name}")
            info.size = wheel.stat().st_size
            info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0
            with open(wheel, "rb") as handle:
                tar.addfile(info, handle)


def build(artifacts_dir, wheelhouse=None):
    """Build the bundle for this controller's Python and architecture into the artifact store
    and record it in the manifest; returns the manifest entry."""
    agent_dir = Path(artifacts_dir) / "agent"
    agent_dir.mkdir(parents=True, exist_ok=True)
    tag, arch = python_tag(), platform.machine()
    name = f"kubesalt-agent-salt{salt.version.__version__}-{tag}-{arch}.tar.gz"
    with tempfile.TemporaryDirectory() as workdir:
        wheels = _collect_wheels(workdir, wheelhouse)
        tmp = agent_dir / (name + ".tmp")
        _reproducible_tar(wheels, tmp)
        os.replace(tmp, agent_dir / name)
    entry = {"python": tag, "arch": arch, "file": name, "salt": salt.version.__version__,
             "sha256": sha256_file(agent_dir / name)}
    manifest = read_manifest(artifacts_dir)
    manifest["bundles"] = [b for b in manifest["bundles"]
                           if (b["python"], b["arch"]) != (tag, arch)] + [entry]
    _write_json(agent_dir / MANIFEST, manifest)
    return entry


def read_manifest(artifacts_dir):
    try:
        with open(Path(artifacts_dir) / "agent" / MANIFEST, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {"format": 1, "bundles": []}


def _write_json(path, data):
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)
