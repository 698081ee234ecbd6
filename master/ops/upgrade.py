"""Upgrading a cluster's Kubernetes: one minor version at a time, never down, in kubeadm's order
(plan.UPGRADE_STAGES). The cluster's configured version becomes the target when the upgrade
starts, because that is what the nodes' pillar hands the states (binaries, containerd and etcd
of the target's row in the version matrix); the operation keeps where it came from.

A failed upgrade is resumed by asking for it again (same version, or none): the rerun starts at
the failed stage; every upgrade step is safe to repeat on a node that already did it.
"""

import dataclasses

from kubesalt.master.inventory import artifacts
from kubesalt.master.ops import context, launch
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.ops import plan
from kubesalt.master.errors import Refused


def _key(version):
    return tuple(int(part) for part in str(version).split("."))


def check_target(matrix, current, requested):
    """The matrix release to upgrade to from `current`, or Refused naming what is wrong."""
    if requested in (None, ""):
        raise Refused.one("k8s_version", "name the version to upgrade to, e.g. "
                                         "k8s_version=1.30")
    target = matrix.resolve_k8s_version(requested)
    if target is None:
        raise Refused.one("k8s_version", f"{requested} is not in the version matrix; supported: "
                                         f"{', '.join(matrix.k8s_versions)}")
    now, want = _key(current), _key(target)
    if want == now:
        raise Refused.one("k8s_version", f"the cluster already runs {current}")
    if want < now:
        raise Refused.one("k8s_version", f"{target} is older than the cluster's {current}; "
                                         "downgrades are not supported")
    if want[0] != now[0] or want[1] > now[1] + 1:
        step = f"{now[0]}.{now[1] + 1}"
        nearest = matrix.resolve_k8s_version(step)
        hint = f"upgrade to {nearest} first" if nearest else \
            f"the matrix has no {step} release to go through"
        raise Refused.one("k8s_version", f"{target} skips a minor version from {current}; "
                                         f"Kubernetes upgrades one minor at a time: {hint}")
    return target


def targets(matrix, spec, artifacts_dir):
    """Each release of the matrix newer than the cluster's: whether the rules above allow an
    upgrade to it from here (with the reason when not), and what the artifact store lacks for
    it with the command that fills it."""
    found = []
    for version in matrix.k8s_versions:
        if _key(version) <= _key(spec.k8s_version):
            continue
        try:
            check_target(matrix, spec.k8s_version, version)
            allowed, reason = True, None
        except Refused as exc:
            allowed, reason = False, exc.errors[0]["message"]
        lacking = artifacts.missing(artifacts_dir, matrix, version)
        found.append({"version": version, "allowed": allowed, "reason": reason,
                      "missing": lacking,
                      "sync_command": artifacts.sync_command(version) if lacking else None})
    return {"cluster": spec.name, "current": spec.k8s_version, "targets": found}


def start(store, layout, cluster, conf_dir, k8s_version=None, spawn=True, matrix=None):
    """Validate and start upgrading `cluster` (or resume its failed upgrade); returns the
    operation record."""
    matrix = matrix or matrix_mod.default()
    record, views = context.cluster_and_nodes(store, layout, cluster)
    spec = record.spec
    failed = launch.last_failed(store, cluster, "upgrade")
    earlier = None
    if failed and (k8s_version in (None, "") or matrix.resolve_k8s_version(k8s_version)
                   == failed["params"]["to"]):
        params, earlier = failed["params"], launch.earlier_work(failed)
    elif record.state != "READY":
        raise Refused.one("name", f"{cluster} is {record.state}; only a READY cluster is "
                                  "upgraded (cluster.status shows why)")
    else:
        params = {"from": spec.k8s_version,
                  "to": check_target(matrix, spec.k8s_version, k8s_version)}
    lacking = artifacts.missing(layout.artifacts_dir, matrix, params["to"])
    if lacking:
        raise Refused.one("artifacts", f"the artifact store lacks {len(lacking)} file(s) for "
                                       f"{params['to']}, e.g. {lacking[0]}; run "
                                       f"{artifacts.sync_command(params['to'])}")
    ordered = context.join_order(context.members(views))
    stages = plan.resolve(spec, [{"id": n["id"], "config": n["config"]} for n in ordered],
                          earlier=earlier, kind="upgrade")
    op = launch.start(store, layout, conf_dir, cluster, "upgrade", stages, params=params,
                      spawn=False)
    # only once the operation holds the cluster: a refused start changes nothing
    store.update_spec(cluster, lambda current: dataclasses.replace(current,
                                                                   k8s_version=params["to"]))
    if spawn:
        launch.started(store, op["id"], launch.spawn_executor(layout, conf_dir, op["id"]))
    return store.operation(op["id"])
