"""What an operator may choose when creating a cluster, as data for forms: every option with
its default and the values the lists offer.

Derived from the definitions the validation uses (spec, the version matrix, the supported
OS list), so a form offers exactly what `cluster.create` accepts.
"""

from kubesalt.master.inventory import spec as spec_mod
from kubesalt.minion_bootstrap import supported_os

TYPE_DESCRIPTIONS = {
    "converged-single-master": "1 node that is master and worker: labs, small edge sites; "
                               "no redundancy",
    "dedicated-single-master": "1 master and at least 1 worker: workloads kept off the "
                               "control plane; no redundancy",
    "converged-multi-master": "3 nodes that are masters and workers: survives the loss of "
                              "one node",
    "dedicated-multi-master": "3 masters and at least 1 worker: survives the loss of one "
                              "master, workloads kept off the control plane",
}


def options(matrix):
    """Every `cluster.create` option's default (what a cluster created with no options
    gets), and the values the lists offer."""
    defaults = spec_mod.build("defaults", matrix).to_dict()
    del defaults["name"]
    types = []
    for (ha, dedicated), (name, _, _) in spec_mod.CLUSTER_TYPES.items():
        spec = spec_mod.ClusterSpec(name="x", k8s_version=defaults["k8s_version"], ha=ha,
                                    dedicated_master=dedicated)
        types.append({"ha": ha, "dedicated_master": dedicated, "type": name,
                      "nodes_required": spec.required_nodes,
                      "description": TYPE_DESCRIPTIONS[name]})
    return {
        "k8s_versions": matrix.k8s_versions,
        "default_k8s_version": matrix.default_k8s_version,
        "os": supported_os.os_ids(),
        "default_os": spec_mod.DEFAULT_OS,
        "blueprints": {name: {"versions": list(bp["versions"]),
                              "default_version": matrix.default_blueprint_version(name),
                              "storage": bp["storage"]}
                       for name, bp in sorted(matrix.blueprints.items())},
        "cni": list(spec_mod.CNIS),
        "cilium_unsupported_os": list(spec_mod.CILIUM_UNSUPPORTED_OS),
        "types": types,
        "updatable": list(spec_mod.UPDATABLE),
        "defaults": defaults,
    }
