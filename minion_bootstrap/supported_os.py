"""Operating systems kubesalt provisions, as data: the controller validates a cluster's `os`
against it and conjurer checks the node's /etc/os-release against it.

Each entry: the os-release ID, the VERSION_IDs accepted, and whether arm64 nodes are
supported (arm64 is for Ubuntu workers only).
"""

SUPPORTED = (
    {"id": "ubuntu", "versions": ("20.04", "22.04", "24.04"), "arm64": True},
    {"id": "debian", "versions": ("11", "12"), "arm64": False},
    {"id": "rhel", "versions": ("7", "8", "9"), "arm64": False},
    {"id": "centos", "versions": ("7",), "arm64": False},
    {"id": "rocky", "versions": ("8", "9"), "arm64": False},
    {"id": "almalinux", "versions": ("8", "9"), "arm64": False},
)


def os_ids():
    """Cluster `os` values: '<id>-<version>', e.g. ubuntu-22.04."""
    return ["%s-%s" % (entry["id"], version) for entry in SUPPORTED
            for version in entry["versions"]]


def _major(version):
    return version.split(".")[0]


def cluster_os(os_release_id, version_id):
    """The cluster `os` a node with this os-release is ('rhel-8' for RHEL 8.9), or None when
    it is not supported."""
    entry = match(os_release_id, version_id)
    if entry is None:
        return None
    version = version_id if version_id in entry["versions"] else _major(version_id)
    return "%s-%s" % (entry["id"], version)


def match(os_release_id, version_id):
    """The supported entry for a node's os-release, or None. RHEL-like systems match on the
    major version (8.9 is 8); Ubuntu and Debian on the exact release."""
    for entry in SUPPORTED:
        if entry["id"] != os_release_id:
            continue
        if version_id in entry["versions"]:
            return entry
        if entry["id"] not in ("ubuntu", "debian") and _major(version_id) in entry["versions"]:
            return entry
    return None
