"""The version matrix (pillar/kubesalt/versions.yaml): supported Kubernetes releases and blueprints.

The matrix is data that platform teams edit; this module only loads it and answers questions
about it, so the controller, the validation and the ext_pillar read one copy.
"""

import functools
from pathlib import Path

import yaml

from kubesalt.master import tree


def _version_key(version):
    return tuple(int(part) for part in version.split("."))


class Matrix:
    def __init__(self, data):
        self.kubernetes = {str(k): v for k, v in data["kubernetes"].items()}
        self.blueprints = data["blueprints"]
        self.rook_ceph = data.get("rook_ceph")

    @property
    def k8s_versions(self):
        return sorted(self.kubernetes, key=_version_key)

    @property
    def default_k8s_version(self):
        return self.k8s_versions[-1]

    def resolve_k8s_version(self, requested):
        """Accept an exact release ('1.30.10', 'v1.30.10') or a minor ('1.30') and return the
        release the matrix has for it, or None."""
        version = str(requested).lstrip("v")
        if version in self.kubernetes:
            return version
        same_minor = [v for v in self.k8s_versions if v.rsplit(".", 1)[0] == version]
        return same_minor[-1] if same_minor else None

    def components(self, k8s_version):
        return dict(self.kubernetes[k8s_version])

    def blueprint(self, name):
        return self.blueprints.get(name)

    def default_blueprint_version(self, name):
        return sorted(self.blueprints[name]["versions"], key=_version_key)[-1]


def load(path=None):
    path = Path(path) if path else tree.pillar_dir() / "kubesalt" / "versions.yaml"
    with open(path, encoding="utf-8") as handle:
        return Matrix(yaml.safe_load(handle))


@functools.cache
def default():
    return load()
