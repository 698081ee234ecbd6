"""Operator verbs for clusters: create, show, list, update, delete, installer, provision,
upgrade, reset, status, and what forms offer: options, upgrades.

Thin wrappers: the logic is in kubesalt.master.inventory.clusters and kubesalt.master.ops,
which unit tests call without a master.

    salt-run cluster.create edge1 ha=True dedicated_master=True labels='{env: prod}'
    salt-run cluster.show edge1 --out=json
    salt-run cluster.installer edge1 dest=/root/edge1
"""

import functools

from kubesalt.master.health import check as health_check
from kubesalt.master.inventory import choices
from kubesalt.master.inventory import clusters
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.inventory import nodes
from kubesalt.master.ops import cancel as cancel_mod
from kubesalt.master.ops import deletion
from kubesalt.master.ops import status as status_mod
from kubesalt.master.verbs import saltcalls
from kubesalt.master.verbs import support
from kubesalt.master.ops import provision as provision_mod
from kubesalt.master.ops import reset as reset_mod
from kubesalt.master.ops import upgrade as upgrade_mod

__virtualname__ = "cluster"


def __virtual__():
    return __virtualname__


@support.verb
def create(name, **options):
    """Create a cluster. Every option has a default; see README for the list."""
    return clusters.create(support.store(__opts__), name, **options)


@support.verb
def show(name):
    """Every setting of a cluster with its effective value, its type, the nodes it needs and
    its nodes ready/total."""
    store = support.store(__opts__)
    return clusters.show(store, name,
                         counts=nodes.counts(store, support.pki_dir(__opts__), name),
                         health=health_check.views(store)[0])


@support.verb
def list_():
    """All clusters with their settings, their nodes ready/total and their health."""
    store = support.store(__opts__)
    return clusters.list_(store, counts=nodes.counts(store, support.pki_dir(__opts__)),
                          health=health_check.views(store)[0])


@support.verb
def health(name):
    """Check the cluster's health now: each node's agent asked, and Kubernetes' node readiness
    through a master that answers. The controller also checks every 15 s and fires
    kubesalt/cluster/NAME/health and kubesalt/node/ID/health events when a health changes."""
    store = support.store(__opts__)
    pki_dir = support.pki_dir(__opts__)
    clusters.record(store, name)
    probe = saltcalls.HealthProbe(__opts__, health_check.kubectl_command())
    try:
        changes = health_check.check(store, pki_dir, probe, name)
    finally:
        probe.close()
    saltcalls.fire_health(__opts__, changes)
    return health_check.report(store, name)


@support.verb
def options():
    """Every cluster.create option with its default, and the values offered: Kubernetes
    versions, OSes, blueprints, CNIs, the four cluster types."""
    return choices.options(matrix_mod.default())


@support.verb
def upgrades(name):
    """The versions the cluster may be upgraded to from its own (one minor at a time, never
    down), each with what the artifact store lacks for it."""
    record = clusters.record(support.store(__opts__), name)
    return upgrade_mod.targets(matrix_mod.default(), record.spec,
                               support.layout(__opts__).artifacts_dir)


@support.verb
def update(name, **changes):
    """Change labels (merged; a label set to null is removed), location, auto_approve,
    blueprint_version, reset_enabled or installer_ttl_days."""
    return clusters.update(support.store(__opts__), name, **changes)


@support.verb
def delete(name, force=False, confirm=False, wait=False, timeout=3600):
    """Delete a cluster with no nodes and no running operation: its record, installer
    credentials and secrets. One with nodes is refused unless force=True confirm=True: then
    every node is reset as cluster.reset does (kubesalt's agent removed, keys and records
    deleted) and the cluster deleted last, as an operation (wait=True follows it; after a
    failure the same command resumes)."""
    store = support.store(__opts__)
    op = deletion.start(store, support.layout(__opts__), name, support.conf_dir(__opts__),
                        force=force, confirm=confirm)
    if op is None:
        return {"deleted": name}
    return support.started(__context__, store, op, wait, timeout,
                           saltcalls.progress(globals()), deletion.warning(op))


@support.verb
def installer(name, dest=None, rotate=False):
    """Issue installer credentials: writes NAME.pem and NAME-passphrase.txt (0600) to dest.
    rotate=True revokes every earlier set of this cluster's credentials."""
    layout = support.layout(__opts__)
    return clusters.installer(support.store(__opts__),
                              support.controller_settings(__opts__),
                              layout.kubesalt_pki, layout.master_pub, name, dest,
                              rotate=rotate)


@support.verb
def provision(name, wait=False, timeout=3600):
    """Validate the cluster's nodes and start provisioning; returns the operation id. With
    wait=True, reports each stage as it runs and returns the final status. Rerunning after a
    failure runs only what did not finish; on a READY cluster it joins new configured workers."""
    store = support.store(__opts__)
    settings = support.controller_settings(__opts__)
    op = provision_mod.start(store, support.layout(__opts__), name,
                             functools.partial(saltcalls.cached_grains, __opts__),
                             support.conf_dir(__opts__),
                             controller_addresses=(settings.get("advertise"),
                                                   settings.get("interface")))
    return support.started(__context__, store, op, wait, timeout,
                           saltcalls.progress(globals()))


@support.verb
def upgrade(name, k8s_version=None, wait=False, timeout=7200):
    """Upgrade the cluster's Kubernetes to k8s_version (one minor at a time, never down):
    the first master, the other masters, then the workers one at a time, each drained around
    its upgrade; containerd and etcd follow the version matrix. After a failure, run it again
    (the version may be left out) to resume where it stopped."""
    store = support.store(__opts__)
    op = upgrade_mod.start(store, support.layout(__opts__), name, support.conf_dir(__opts__),
                           k8s_version=k8s_version)
    return support.started(__context__, store, op, wait, timeout,
                           saltcalls.progress(globals()))


@support.verb
def reset(name, confirm=False, wait=False, timeout=3600):
    """Reset the cluster: kubeadm reset and everything provisioning installed removed from
    every node, kubesalt's agent removed, the nodes' keys and records deleted, installer
    credentials revoked. The cluster and its settings stay, ready for new installer
    credentials. Needs reset_enabled=True on the cluster, and confirm=True."""
    store = support.store(__opts__)
    confirmed = confirm or support.typed_back(
        __opts__, f"Reset cluster {name}: every node loses Kubernetes and kubesalt. Type the "
                  "cluster name to confirm: ", name)
    op = reset_mod.start(store, support.layout(__opts__), name, support.conf_dir(__opts__),
                         confirm=confirmed)
    return support.started(__context__, store, op, wait, timeout,
                           saltcalls.progress(globals()), reset_mod.unreachable_warning(op))


@support.verb
def cancel(name, wait=False, timeout=120):
    """Cancel the cluster's running operation: nothing more is started, the jobs running on
    its nodes are killed, and the operation is recorded cancelled at its stage. Run the same
    command as the operation's again to resume it."""
    store = support.store(__opts__)
    op = cancel_mod.request(store, name)
    result = cancel_mod.answer(store, op, wait, timeout, saltcalls.progress(globals()))
    if result.get("state") not in ("cancelling", "cancelled"):
        __context__["retcode"] = 1  # it ended otherwise, or is still running after timeout
    return result


@support.verb
def status(name, history=False):
    """The cluster's last operation stage by stage (state, start, duration, nodes, error); with
    history=True every operation."""
    return status_mod.cluster_status(support.store(__opts__), name, history)


__func_alias__ = {"list_": "list"}
