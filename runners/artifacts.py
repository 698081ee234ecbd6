"""The artifact store nodes install from.

    salt-run artifacts.sync 1.30            # from upstream release URLs
    salt-run artifacts.sync 1.30 source=/mnt/airgap/kubesalt-artifacts
    salt-run artifacts.missing 1.30
    salt-run artifacts.list
"""

from kubesalt.master.inventory import artifacts
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.verbs import support
from kubesalt.master.errors import Refused

__virtualname__ = "artifacts"


def __virtual__():
    return __virtualname__


@support.verb
def sync(version, source=None, arch="amd64"):
    """Fill the store with every artifact of a Kubernetes release, checksummed."""
    m, release = artifacts.release(version, arch)
    layout = support.layout(__opts__)
    try:
        synced = artifacts.sync(layout.artifacts_dir, m, release, source=source, arch=arch)
    except (OSError, ValueError) as exc:
        raise Refused.one("source", str(exc)) from None
    return {"version": release, "artifacts": synced}


@support.verb
def list_(arch="amd64"):
    """Every release of the version matrix: what the store holds and what it lacks."""
    return artifacts.overview(support.layout(__opts__).artifacts_dir, matrix_mod.default(),
                              artifacts.check_arch(arch))


@support.verb
def missing(version, arch="amd64"):
    """What the store still lacks for a release."""
    m, release = artifacts.release(version, arch)
    layout = support.layout(__opts__)
    return {"version": release,
            "missing": artifacts.missing(layout.artifacts_dir, m, release, arch)}


__func_alias__ = {"list_": "list"}
