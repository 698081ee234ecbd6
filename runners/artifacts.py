"""The artifact store nodes install from.

    salt-run artifacts.sync 1.30            # from upstream release URLs
    salt-run artifacts.sync 1.30 source=/mnt/airgap/kubesalt-artifacts
    salt-run artifacts.missing 1.30
"""

from kubesalt.master import artifacts, matrix, runner_support

__virtualname__ = "artifacts"


def __virtual__():
    return __virtualname__


def _release(version):
    m = matrix.default()
    release = m.resolve_k8s_version(version)
    if release is None:
        return m, None, runner_support.refused(__context__, [{
            "field": "version", "message": f"{version!r} is not in the version matrix; choose "
                                           f"one of {', '.join(m.k8s_versions)}"}])
    return m, release, None


def sync(version, source=None, arch="amd64"):
    """Fill the store with every artifact of a Kubernetes release, checksummed."""
    m, release, refusal = _release(version)
    if refusal:
        return refusal
    layout = runner_support.layout(__opts__)
    try:
        synced = artifacts.sync(layout.artifacts_dir, m, release, source=source, arch=arch)
    except (OSError, ValueError) as exc:
        return runner_support.refused(__context__, [{"field": "source", "message": str(exc)}])
    return {"version": release, "artifacts": synced}


def missing(version, arch="amd64"):
    """What the store still lacks for a release."""
    m, release, refusal = _release(version)
    if refusal:
        return refusal
    layout = runner_support.layout(__opts__)
    return {"version": release,
            "missing": artifacts.missing(layout.artifacts_dir, m, release, arch)}
