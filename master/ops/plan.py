"""The plans of kubesalt's operations: each an ordered list of stages, in the spirit of
kubeadm's phases. Provisioning, upgrade, reset, node removal and cluster deletion each have
one.

The operation's executor (master/ops/executor.py) runs these lists, and `cluster.status` shows
the same names, so what runs and what is shown cannot drift apart. Targets are node selections
resolved against the cluster's configured nodes; stages that target `controller` are done by
the executor itself, after the node stages.

A stage runs on each of its nodes as soon as what it comes `after` is done (master/ops/
lanes.py turns this into per-node work): `"os/node"` waits for the same node's `os` only, so
every node goes through its host stages at its own pace; `"consul/masters"` waits for `consul`
on every master; `"etcd"` for `etcd` on all of its nodes. A stage without `after` waits for the
whole stage before it in the plan, the strict order every plan had before lanes.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    title: str
    targets: str  # all | masters | first_master | other_masters | workers | storage |
    #               removed (the node a removal takes out) | controller
    sls: str = ""  # empty: the controller does the stage itself
    parallel: bool = True
    timeout: int = 600
    when: str = ""  # "" always | "storage": the blueprint has storage | "master": the removed
    #                 node is a master
    # Each target node, one at a time, is drained (from the first master) before the SLS
    # and uncordoned after it, as kubeadm's upgrade procedure does.
    drain: bool = False
    # A controller stage that deletes the cluster, and with it the operation's own record
    # (they cascade): it comes last, and the executor returns what the record would say.
    removes_cluster: bool = False
    # What must be done before this stage starts on a node: "stage" (all of it),
    # "stage/node" (the same node's), "stage/masters" (every master's). None: the whole
    # stage before it in the plan.
    after: tuple = None


STAGES = (
    Stage("prechecks", "Check every node is ready", "all", "kubesalt.prechecks", timeout=120,
          after=()),
    Stage("os", "Prepare the operating system", "all", "kubesalt.os", timeout=300,
          after=("prechecks/node",)),
    Stage("binaries", "Install Kubernetes binaries", "all", "kubesalt.binaries",
          after=("os/node",)),
    Stage("containerd", "Install containerd", "all", "kubesalt.containerd",
          after=("binaries/node",)),
    # consul servers (the masters) elect a leader only with a quorum of them, and every agent
    # waits for that leader: the masters start consul together.
    Stage("consul", "Start consul", "all", "kubesalt.consul",
          after=("containerd/node", "containerd/masters")),
    # etcd's members wait for each other's health under one timeout: they start together.
    Stage("etcd", "Start etcd on the masters", "masters", "kubesalt.etcd",
          after=("consul/masters",)),
    Stage("control-plane-init", "Initialise the control plane", "first_master",
          "kubesalt.kubeadm.init", after=("etcd",)),
    Stage("control-plane-join", "Join the other masters", "other_masters",
          "kubesalt.kubeadm.join_control_plane", parallel=False,
          after=("control-plane-init",)),
    # a worker joins as soon as the control plane answers, not after the other masters
    Stage("worker-join", "Join the workers", "workers", "kubesalt.kubeadm.join_worker",
          after=("consul/node", "control-plane-init")),
    Stage("cni", "Install the CNI", "first_master", "kubesalt.cni",
          after=("control-plane-init",)),
    Stage("taints", "Taint or untaint the masters", "first_master", "kubesalt.taints",
          after=("control-plane-init", "control-plane-join")),
    Stage("cert-manager", "Install cert-manager", "first_master",
          "kubesalt.addons.cert_manager", after=("cni",)),
    Stage("storage", "Install rook-ceph storage", "first_master", "kubesalt.addons.rook_ceph",
          timeout=900, when="storage",
          after=("cert-manager", "control-plane-join", "worker-join")),
    Stage("wait-for-pods", "Wait for every pod to be ready", "first_master",
          "kubesalt.wait_pods", timeout=900,
          after=("taints", "cert-manager", "storage", "control-plane-join", "worker-join")),
    Stage("ready", "Mark the cluster READY", "controller"),
)

STAGE_NAMES = tuple(s.name for s in STAGES)

# kubeadm's upgrade order: `kubeadm upgrade apply` on the first master, `kubeadm upgrade node`
# on the other masters, then the workers one at a time; each node drained around its upgrade.
UPGRADE_STAGES = (
    Stage("upgrade-check", "Check the control plane can take the new version", "first_master",
          "kubesalt.upgrade.check", timeout=300),
    Stage("upgrade-first-master", "Upgrade the first master (kubeadm upgrade apply)",
          "first_master", "kubesalt.upgrade", parallel=False, drain=True, timeout=900),
    Stage("upgrade-other-masters", "Upgrade the other masters (kubeadm upgrade node)",
          "other_masters", "kubesalt.upgrade", parallel=False, drain=True, timeout=900),
    Stage("upgrade-workers", "Upgrade the workers one at a time", "workers", "kubesalt.upgrade",
          parallel=False, drain=True, timeout=900),
    Stage("wait-for-pods", "Wait for every pod to be ready", "first_master",
          "kubesalt.wait_pods", timeout=900),
    Stage("ready", "Mark the cluster READY at the new version", "controller"),
)

RESET_STAGES = (
    Stage("reset-nodes", "kubeadm reset; remove what provisioning installed", "all",
          "kubesalt.reset", timeout=300),
    Stage("remove-agents", "Remove kubesalt's node agent", "all", "kubesalt.agent.remove",
          timeout=120),
    Stage("forget-nodes", "Delete the nodes' keys and records, revoke installer credentials",
          "controller"),
)

# cluster.delete force=True: every node reset as a reset does, then the cluster itself goes.
DELETE_STAGES = (
    *RESET_STAGES,
    Stage("delete-cluster", "Delete the cluster's record, secrets and installer files",
          "controller", removes_cluster=True),
)

# kubeadm's order for taking a node out: drain, (a master's etcd member), `kubeadm reset` on
# the node, then delete the Node object (a kubelet still running would register it again).
REMOVE_NODE_STAGES = (
    Stage("drain", "Drain the node", "first_master", "kubesalt.kubeadm.drain", timeout=600),
    Stage("etcd-member", "Remove the node's etcd member", "first_master",
          "kubesalt.etcd.remove_member", timeout=120, when="master"),
    Stage("reset-node", "kubeadm reset; remove what provisioning installed", "removed",
          "kubesalt.reset", timeout=300),
    Stage("remove-agent", "Remove kubesalt's node agent", "removed", "kubesalt.agent.remove",
          timeout=120),
    Stage("delete-node", "Delete the node from Kubernetes", "first_master",
          "kubesalt.kubeadm.delete_node", timeout=120),
    Stage("forget-node", "Delete the node's key and record", "controller"),
)

PLANS = {"provision": STAGES, "upgrade": UPGRADE_STAGES, "reset": RESET_STAGES,
         "remove-node": REMOVE_NODE_STAGES, "delete": DELETE_STAGES}


def select(nodes, targets, removed=None):
    """Node ids a stage targets. `nodes` are configured node records in join order (the
    first master first); `removed` is the id a node removal takes out (not in `nodes`)."""
    if targets == "removed":
        return [removed] if removed else []
    masters = [n["id"] for n in nodes if "master" in roles(n)]
    if targets == "all":
        return [n["id"] for n in nodes]
    if targets == "masters":
        return masters
    if targets == "first_master":
        return masters[:1]
    if targets == "other_masters":
        return masters[1:]
    if targets == "workers":
        return [n["id"] for n in nodes if "master" not in roles(n)]
    if targets == "storage":
        return [n["id"] for n in nodes if "storage" in roles(n)]
    if targets == "controller":
        return []
    raise ValueError(f"unknown stage target {targets!r}")


def roles(node):
    """A node's configured roles; none for a node never configured (a reset takes those)."""
    return (node.get("config") or {}).get("roles", [])


# When nodes join a READY cluster, these cluster-wide stages still run; the rest were done.
RUN_WHEN_ADDING = ("wait-for-pods", "ready")
PER_NODE_TARGETS = ("all", "workers", "storage")


EARLIER = "done in an earlier run"
# How an operation and each of its stages end; a rerun resumes the unfinished ones.
UNFINISHED = ("failed", "cancelled")
ENDED = ("done", *UNFINISHED)
CANCELLED = "cancelled by the operator (cluster.cancel); run the same command again to resume"


def resolve(spec, nodes, earlier=None, only=None, kind="provision", removed=None):
    """The stages of one operation as data the executor runs: each with its target node ids;
    stages with nothing to target or not wanted by the blueprint are marked skipped.
    `earlier` ({stage name: node ids}, launch.earlier_work) is what a failed run finished: a
    stage done on all its nodes is skipped, one done on some lists them in `done_nodes`, which
    the executor does not run again (their records say `done_reason`). `only` (node ids)
    provisions just those nodes into an existing cluster. `removed` is the node record a
    removal takes out; `nodes` are then the ones that stay."""
    plan = []
    earlier = earlier or {}
    for stage in PLANS[kind]:
        targets = select(nodes, stage.targets, removed["id"] if removed else None)
        if only is not None and stage.targets in PER_NODE_TARGETS:
            targets = [t for t in targets if t in only]
        done = [t for t in targets if t in set(earlier.get(stage.name, ()))]
        skip = ""
        if stage.when == "storage" and spec.storage == "none":
            skip = "the blueprint has no storage"
        elif stage.when == "master" and not (removed and "master" in roles(removed)):
            skip = "the node is not a master"
        elif only is not None and stage.targets not in PER_NODE_TARGETS \
                and stage.name not in RUN_WHEN_ADDING:
            skip = "the cluster has it already"
        elif stage.sls and not targets:
            skip = "no node has this role"
        elif stage.name in earlier and len(done) == len(targets):
            skip = EARLIER
        plan.append({**dataclasses.asdict(stage), "nodes": targets, "skip": skip,
                     "done_nodes": [] if skip else done, "done_reason": EARLIER})
    return plan
