"""Operator verbs for clusters: create, show, list, update, delete, installer.

Thin wrappers: the logic is kubesalt.master.clusters, which unit tests call without a master.

    salt-run cluster.create edge1 ha=True dedicated_master=True labels='{env: prod}'
    salt-run cluster.show edge1 --out=json
    salt-run cluster.installer edge1 dest=/root/edge1
"""

from kubesalt.master import clusters, runner_support

__virtualname__ = "cluster"


def __virtual__():
    return __virtualname__


def _call(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except clusters.ClusterError as exc:
        return runner_support.refused(__context__, exc.errors)


def create(name, **kwargs):
    """Create a cluster. Every option has a default; see README for the list."""
    return _call(clusters.create, runner_support.store(__opts__), name,
                 **runner_support.strip_salt_kwargs(kwargs))


def show(name):
    """Every setting of a cluster with its effective value, its type and the nodes it needs."""
    return _call(clusters.show, runner_support.store(__opts__), name)


def list_():
    """All clusters with their settings."""
    return _call(clusters.list_, runner_support.store(__opts__))


def update(name, **kwargs):
    """Change labels (merged; a label set to null is removed), location, auto_approve,
    blueprint_version, reset_enabled or installer_ttl_days."""
    return _call(clusters.update, runner_support.store(__opts__), name,
                 **runner_support.strip_salt_kwargs(kwargs))


def delete(name):
    """Delete a cluster record and its installer credentials."""
    return _call(clusters.delete, runner_support.store(__opts__), name)


def installer(name, dest=None):
    """Issue installer credentials: writes NAME.pem and NAME-passphrase.txt (0600) to dest."""
    layout = runner_support.layout(__opts__)
    return _call(clusters.installer, runner_support.store(__opts__),
                 runner_support.controller_settings(__opts__), layout.kubesalt_pki,
                 layout.master_pub, name, dest)


__func_alias__ = {"list_": "list"}
