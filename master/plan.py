"""The provisioning plan: one ordered list of stages, in the spirit of kubeadm's phases.

The orchestration SLS (states/orch/provision.sls) is rendered from this list, and
`cluster.status` shows the same names, so what runs and what is shown cannot drift apart.
Targets are node selections resolved against the cluster's configured nodes.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    title: str
    targets: str  # all | masters | first_master | other_masters | workers | storage
    sls: str = ""  # empty: the controller does the stage itself
    parallel: bool = True
    timeout: int = 600
    when: str = ""  # "" always | "storage": only when the blueprint has storage


STAGES = (
    Stage("prechecks", "Check every node is ready", "all", "kubesalt.prechecks", timeout=120),
    Stage("os", "Prepare the operating system", "all", "kubesalt.os", timeout=300),
    Stage("binaries", "Install Kubernetes binaries", "all", "kubesalt.binaries"),
    Stage("containerd", "Install containerd", "all", "kubesalt.containerd"),
    Stage("consul", "Start consul", "all", "kubesalt.consul"),
    Stage("etcd", "Start etcd on the masters", "masters", "kubesalt.etcd"),
    Stage("control-plane-init", "Initialise the control plane", "first_master",
          "kubesalt.kubeadm.init"),
    Stage("control-plane-join", "Join the other masters", "other_masters",
          "kubesalt.kubeadm.join_control_plane", parallel=False),
    Stage("worker-join", "Join the workers", "workers", "kubesalt.kubeadm.join_worker"),
    Stage("cni", "Install the CNI", "first_master", "kubesalt.cni"),
    Stage("taints", "Taint or untaint the masters", "first_master", "kubesalt.taints"),
    Stage("cert-manager", "Install cert-manager", "first_master",
          "kubesalt.addons.cert_manager"),
    Stage("operator", "Install the kubesalt operator", "first_master",
          "kubesalt.addons.operator"),
    Stage("storage", "Install rook-ceph storage", "first_master", "kubesalt.addons.rook_ceph",
          timeout=900, when="storage"),
    Stage("wait-for-pods", "Wait for every pod to be ready", "first_master",
          "kubesalt.wait_pods", timeout=900),
    Stage("ready", "Mark the cluster READY", "controller"),
)

STAGE_NAMES = tuple(s.name for s in STAGES)


def select(nodes, targets):
    """Node ids a stage targets. `nodes` are configured node records in join order (the
    first master first)."""
    masters = [n["id"] for n in nodes if "master" in n["config"]["roles"]]
    if targets == "all":
        return [n["id"] for n in nodes]
    if targets == "masters":
        return masters
    if targets == "first_master":
        return masters[:1]
    if targets == "other_masters":
        return masters[1:]
    if targets == "workers":
        return [n["id"] for n in nodes if "master" not in n["config"]["roles"]]
    if targets == "storage":
        return [n["id"] for n in nodes if "storage" in n["config"]["roles"]]
    if targets == "controller":
        return []
    raise ValueError(f"unknown stage target {targets!r}")


# When nodes join a READY cluster, these cluster-wide stages still run; the rest were done.
RUN_WHEN_ADDING = ("wait-for-pods", "ready")
PER_NODE_TARGETS = ("all", "workers", "storage")


def resolve(spec, nodes, resume_from=None, only=None):
    """The stages of one provisioning run as data the orchestration renders: each with its
    target node ids; stages with nothing to target or not wanted by the blueprint are marked
    skipped. `resume_from` skips (as already done) every stage before it. `only` (node ids)
    provisions just those nodes into an existing cluster."""
    plan = []
    resuming = resume_from is not None
    for stage in STAGES:
        if resuming and stage.name == resume_from:
            resuming = False
        targets = select(nodes, stage.targets)
        if only is not None and stage.targets in PER_NODE_TARGETS:
            targets = [t for t in targets if t in only]
        skip = ""
        if stage.when == "storage" and spec.get("storage", "none") == "none":
            skip = "the blueprint has no storage"
        elif only is not None and stage.targets not in PER_NODE_TARGETS \
                and stage.name not in RUN_WHEN_ADDING:
            skip = "the cluster has it already"
        elif stage.sls and not targets:
            skip = "no node has this role"
        elif resuming:
            skip = "done in an earlier run"
        plan.append({**dataclasses.asdict(stage), "nodes": targets, "skip": skip})
    return plan
