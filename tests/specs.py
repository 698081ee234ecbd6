"""Typed cluster specs for tests: a valid ClusterSpec with only the fields a test cares about."""

import dataclasses

from kubesalt.master.inventory.spec import ClusterSpec


def cluster_spec(**fields):
    """ClusterSpec(name="c", k8s_version="1.30.10") with `fields` replaced."""
    return dataclasses.replace(ClusterSpec(name="c", k8s_version="1.30.10"), **fields)
