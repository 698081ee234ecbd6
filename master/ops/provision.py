"""Provisioning a cluster: validation of its nodes against its type, then one operation.

Validation lists every problem at once. The operation runs detached (kubesalt.master.ops.launch).
"""

import ipaddress

from kubesalt.master.inventory import artifacts
from kubesalt.master.ops import context, launch
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.inventory import nodes as nodes_mod
from kubesalt.master.ops import plan
from kubesalt.master.errors import Refused

CILIUM_MIN_KERNEL = (4, 19, 57)
ARM = ("aarch64", "arm64")


def _kernel(release):
    parts = []
    for piece in str(release).split("-")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple((parts + [0, 0, 0])[:3])


def _check_addresses(spec, nodes, controller_addresses, problem):
    """Pods and services get addresses from their subnets: a subnet holding a node's or the
    controller's address makes that host unreachable from inside the cluster."""
    hosts = [(f"node {n['id']}", a) for n in nodes
             for a in {n.get("address"), (n.get("config") or {}).get("address")} if a]
    hosts += [("the controller", a) for a in controller_addresses if a]
    for field in ("pod_subnet", "service_subnet"):
        if not getattr(spec, field):
            continue
        subnet = ipaddress.ip_network(getattr(spec, field))
        for who, address in hosts:
            try:
                inside = ipaddress.ip_address(address) in subnet
            except ValueError:
                continue
            if inside:
                problem(field, f"{getattr(spec, field)} contains the address {address} of {who}; "
                               "create the cluster with a subnet that holds no host's address")


def validate(spec, nodes, grains_of, new_only=False, controller_addresses=()):
    """`nodes` are node views (id, status, config) of the cluster; `grains_of(id)` their facts.
    Returns the nodes to provision in join order (first master first)."""
    errors = []

    def problem(field, message):
        errors.append({"field": field, "message": message})

    active = [n for n in nodes if n["status"] != "REJECTED"]
    for node in active:
        if node["status"] not in ("APPROVED", *nodes_mod.PHASES):
            problem("nodes", f"{node['id']} is {node['status']}; approve it (node.approve) or "
                             "reject it first")
        elif not node["config"]:
            problem("nodes", f"{node['id']} has no configuration; run node.configure")
    configured = [n for n in active if n["config"]]
    masters = [n for n in configured if "master" in n["config"]["roles"]]
    workers = [n for n in configured if "master" not in n["config"]["roles"]]
    storage = [n for n in configured if "storage" in n["config"]["roles"]]
    want = spec.required_nodes["masters"]
    if len(masters) != want:
        problem("masters", f"a {spec.cluster_type} cluster needs exactly {want} master(s); "
                           f"{len(masters)} configured")
    if spec.required_nodes["dedicated_workers"] and not workers:
        problem("workers", f"a {spec.cluster_type} cluster needs at least 1 dedicated worker; "
                           "configure a node with roles=worker")
    if spec.storage != "none":
        need = spec.min_storage_nodes
        if len(storage) < need:
            problem("storage", f"the {spec.blueprint} blueprint needs at least {need} "
                               f"storage node(s); {len(storage)} configured")
    for node in configured:
        grains = grains_of(node["id"])
        if spec.cni == "cilium":
            if str(grains.get("os_family")) == "RedHat" and str(grains.get("osmajorrelease")) \
                    == "7":
                problem("cni", f"{node['id']} runs RHEL/CentOS 7, which cilium does not "
                               "support")
            if _kernel(grains.get("kernelrelease", "0")) < CILIUM_MIN_KERNEL:
                problem("cni", f"{node['id']} has kernel {grains.get('kernelrelease')}; cilium "
                               "needs 4.19.57 or newer")
        if grains.get("cpuarch") in ARM and ("master" in node["config"]["roles"]
                                             or str(grains.get("os")) != "Ubuntu"):
            problem("nodes", f"{node['id']} is arm64: it can only be an Ubuntu worker")
    _check_addresses(spec, active, controller_addresses, problem)
    if new_only:
        for node in masters:
            if node["status"] == "APPROVED":
                problem("nodes", f"{node['id']} would be a new master of a READY cluster; only "
                                 "workers can be added")
    if errors:
        raise Refused(errors)
    return context.join_order(configured)


def earlier_work(store, cluster):
    """What the last provisioning finished, when it failed or was cancelled: a rerun resumes
    with the rest (launch.earlier_work)."""
    failed = launch.last_failed(store, cluster, "provision")
    return launch.earlier_work(failed) if failed else None


def failed_addition(store, cluster):
    """The cluster's last provisioning when it added nodes to the READY cluster and failed or
    was cancelled, else None: the rerun finishes those nodes, not the whole cluster."""
    failed = launch.last_failed(store, cluster, "provision")
    return failed if failed and failed["params"].get("adding") else None


# A failed operation of these kinds is finished by its own verb before provisioning again.
RESUMED_BY = {"upgrade": "salt-run cluster.upgrade {cluster}",
              "reset": "salt-run cluster.reset {cluster} confirm=True",
              "delete": "salt-run cluster.delete {cluster} force=True confirm=True"}


def start(store, layout, cluster, grains_of, conf_dir, spawn=True, controller_addresses=()):
    """Validate and start provisioning `cluster`; returns the operation record."""
    record, views = context.cluster_and_nodes(store, layout, cluster)
    spec = record.spec
    for kind, verb in RESUMED_BY.items():
        failed = launch.last_failed(store, cluster, kind)
        if failed:
            raise Refused([{"field": "name", "message": f"{cluster}'s {kind} "
                                   f"{failed['id']} failed at {failed['failed_stage']}; finish "
                                   f"it first: {verb.format(cluster=cluster)}"}])
    adding = record.state == "READY"
    ordered = validate(spec, views, grains_of, new_only=adding,
                       controller_addresses=controller_addresses)
    lacking = artifacts.missing(layout.artifacts_dir, matrix_mod.default(), spec.k8s_version)
    if lacking:
        raise Refused([{"field": "artifacts", "message": f"the artifact store lacks "
                                                               f"{len(lacking)} file(s) for "
                                                               f"{spec.k8s_version}, e.g. "
                                                               f"{lacking[0]}; run salt-run "
                                                               "artifacts.sync "
                                                               f"{spec.k8s_version}"}])
    only = params = None
    if adding:
        only = {n["id"] for n in ordered if n["status"] == "APPROVED"}
        unfinished = failed_addition(store, cluster)
        if unfinished:
            only |= set(unfinished["params"]["adding"]) & {n["id"] for n in ordered}
        if not only:
            raise Refused([{"field": "nodes", "message": "the cluster is READY and has "
                                                               "no new configured node to add"}])
        earlier = launch.earlier_work(unfinished) if unfinished else None
        params = {"adding": sorted(only)}
    else:
        earlier = earlier_work(store, cluster)
    stages = plan.resolve(spec, [{"id": n["id"], "config": n["config"]} for n in ordered],
                          earlier=earlier, only=only)
    return launch.start(store, layout, conf_dir, cluster, "provision", stages, params=params,
                        spawn=spawn)
