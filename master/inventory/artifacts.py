"""The controller's artifact store: the binaries and manifests nodes install, with checksums.

Nodes never reach the internet; they fetch from the controller (`salt://kubesalt-artifacts/...`
through Salt's fileserver, or the HTTPS endpoint) and verify the sha256 recorded here. The store
is filled by `salt-run artifacts.sync VERSION`, from upstream release URLs or, for air-gapped
sites, from a local directory laid out like the store.
"""

import json
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

import yaml

from kubesalt.minion_bootstrap.agent import sha256_file

from kubesalt.master import tree
from kubesalt.master.errors import Refused
from kubesalt.master.inventory import matrix as matrix_mod

INDEX = "index.json"
SALT_PREFIX = "salt://kubesalt-artifacts/"
# The architectures the store keeps, by the names release artifacts use.
ARCHES = ("amd64", "arm64")


def catalogue():
    with open(tree.pillar_dir() / "kubesalt" / "artifacts.yaml", encoding="utf-8") as handle:
        return yaml.safe_load(handle)["artifacts"]


def release(version, arch):
    """(the version matrix, the release `version` names in it), or Refused naming every
    problem with `version` and `arch`."""
    m = matrix_mod.default()
    errors = []
    resolved = m.resolve_k8s_version(version)
    if resolved is None:
        errors.append({"field": "version",
                       "message": f"{version!r} is not in the version matrix; choose one of "
                                  f"{', '.join(m.k8s_versions)}"})
    if arch not in ARCHES:
        errors.append(_arch_error(arch))
    if errors:
        raise Refused(errors)
    return m, resolved


def check_arch(arch):
    if arch not in ARCHES:
        raise Refused([_arch_error(arch)])
    return arch


def _arch_error(arch):
    return {"field": "arch", "message": f"{arch!r} is not supported; choose one of "
                                        f"{' or '.join(ARCHES)}"}


def component_versions(matrix, k8s_version):
    versions = dict(matrix.components(k8s_version))
    versions["kubernetes"] = k8s_version
    versions["rook_ceph"] = matrix.rook_ceph
    return versions


def wanted(matrix, k8s_version, arch="amd64"):
    """{artifact name: store path} for one Kubernetes release."""
    if arch not in ARCHES:
        # The arch becomes part of store paths: nothing else may get that far.
        raise ValueError(f"{arch!r} is not an architecture of the store; use "
                         f"{' or '.join(ARCHES)}")
    versions = component_versions(matrix, k8s_version)
    return {name: entry["path"].format(version=versions[entry["component"]], arch=arch)
            for name, entry in catalogue().items()}



def read_index(artifacts_dir):
    try:
        with open(Path(artifacts_dir) / INDEX, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def _write_index(artifacts_dir, index):
    tmp = Path(artifacts_dir) / (INDEX + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(index, handle, indent=2, sort_keys=True)
    os.replace(tmp, Path(artifacts_dir) / INDEX)


def _fetch(url, dest):
    with urllib.request.urlopen(url, timeout=300) as resp, open(dest, "wb") as out:  # noqa: S310
        shutil.copyfileobj(resp, out)


def _fetch_upstream(entry, version, arch, dest):
    """Download one artifact as the store keeps it: several manifests joined into one file,
    a binary taken out of its release zip."""
    urls = entry.get("urls") or [entry["url"]]
    with open(dest, "wb") as out:
        for url in urls:
            part = Path(str(dest) + ".download")
            _fetch(url.format(version=version, arch=arch), part)
            if entry.get("unzip"):
                with zipfile.ZipFile(part) as archive:
                    out.write(archive.read(entry["unzip"]))
            else:
                out.write(part.read_bytes())
                if len(urls) > 1:
                    out.write(b"\n---\n")
            part.unlink()


def sync(artifacts_dir, matrix, k8s_version, source=None, arch="amd64"):
    """Put every artifact of `k8s_version` into the store. With `source` (a directory) files
    are copied from <source>/<store path>; a <file>.sha256 beside one is verified. Returns
    {path: sha256} of what the store now holds for this release."""
    artifacts_dir = Path(artifacts_dir)
    paths = wanted(matrix, k8s_version, arch)
    if source:
        # Everything checked before the store is touched: a bad source leaves nothing behind.
        absent = [str(Path(source) / p) for p in paths.values()
                  if not (Path(source) / p).is_file()]
        if absent:
            raise FileNotFoundError(f"{absent[0]} is missing from the source directory"
                                    + (f" (and {len(absent) - 1} more)" if len(absent) > 1
                                       else ""))
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    index = read_index(artifacts_dir)
    synced = {}
    versions = component_versions(matrix, k8s_version)
    for name, path in paths.items():
        dest = artifacts_dir / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        if source:
            origin = Path(source) / path
            shutil.copyfile(origin, tmp)
            expected = origin.with_name(origin.name + ".sha256")
            if expected.exists():
                want = expected.read_text().split()[0]
                if sha256_file(tmp) != want:
                    tmp.unlink()
                    raise ValueError(f"{origin} does not match {expected.name}")
        else:
            entry = catalogue()[name]
            _fetch_upstream(entry, versions[entry["component"]], arch, tmp)
        os.replace(tmp, dest)
        digest = sha256_file(dest)
        index[path] = digest
        synced[path] = digest
    _write_index(artifacts_dir, index)
    return synced


def missing(artifacts_dir, matrix, k8s_version, arch="amd64"):
    index = read_index(artifacts_dir)
    return sorted(p for p in wanted(matrix, k8s_version, arch).values() if p not in index)


def sync_command(version):
    """The command that fills the store for `version`, as refusals and views name it."""
    return f"salt-run artifacts.sync {version}"


def overview(artifacts_dir, matrix, arch="amd64"):
    """Per release of the matrix: what the store holds for it and what it lacks."""
    index = read_index(artifacts_dir)
    versions = []
    for version in matrix.k8s_versions:
        paths = sorted(wanted(matrix, version, arch).values())
        lacking = [p for p in paths if p not in index]
        versions.append({"version": version, "arch": arch,
                         "present": [p for p in paths if p in index], "missing": lacking,
                         "complete": not lacking,
                         "sync_command": sync_command(version) if lacking else None})
    return {"versions": versions}


def pillar_entries(artifacts_dir, matrix, k8s_version, arch="amd64"):
    """What the states get: {artifact: {source: salt://..., sha256: hex}}."""
    index = read_index(artifacts_dir)
    return {name: {"source": SALT_PREFIX + path, "sha256": index[path]}
            for name, path in wanted(matrix, k8s_version, arch).items() if path in index}
