"""What a lab node and the controller keep of kubesalt once a node has been taken out (a reset,
a node removal, or `cluster.delete NAME force=True confirm=True`): nothing. For lab tests:

    wait_until_agent_gone(lab_node)       # the agent removes itself a few seconds after
    assert_node_clean(lab_node)           # its last state run returns
    assert_no_key(controller, node_id)
"""

from tests.waiting import wait_for

# What provisioning and conjurer install on a node, and the services they start.
INSTALLED = ("/opt/kubesalt", "/etc/systemd/system/kubesalt-minion.service", "/etc/kubesalt",
             "/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/etc/etcd/pki",
             "/var/lib/consul", "/etc/consul.d", "/etc/containerd", "/etc/cni/net.d",
             "/var/cache/kubesalt", "/usr/local/bin/kubeadm", "/usr/local/bin/kubelet",
             "/usr/local/bin/etcd", "/usr/local/bin/consul", "/usr/local/bin/containerd",
             "/etc/systemd/system/kubelet.service", "/etc/systemd/system/etcd.service")
UNITS = ("kubesalt-minion", "kubelet", "etcd", "consul", "containerd", "kubesalt")
# pgrep -f patterns: kubesalt's agent runs as /opt/kubesalt/.../salt-minion
PROCESSES = ("/opt/kubesalt", "salt-minion", "kubelet", "etcd", "consul", "containerd")


def wait_until_agent_gone(lab_node, timeout=120):
    """Wait for kubesalt's agent to have removed itself (/opt/kubesalt gone)."""
    wait_for(lambda: not lab_node.exists("/opt/kubesalt"), timeout,
             f"{lab_node.name}'s kubesalt agent to go")


def assert_node_clean(lab_node):
    """No kubesalt agent, kubelet or etcd on `lab_node`: no files, units or processes."""
    left = [path for path in INSTALLED if lab_node.exists(path)]
    assert not left, f"{lab_node.name} keeps {left}"
    units = lab_node.run(["systemctl", "list-units", "--all", "--no-legend", "--plain",
                          *[f"{unit}*" for unit in UNITS]]).stdout
    assert not units.strip(), f"{lab_node.name} keeps units {units}"
    processes = lab_node.run(["pgrep", "-a", "-f", "|".join(PROCESSES)])
    assert processes.returncode == 1, f"{lab_node.name} runs {processes.stdout}"


def assert_no_key(controller, node_id):
    """The controller holds no key of `node_id` in any state, nor its minion data cache."""
    pki = controller.root / "etc" / "salt" / "pki" / "master"
    assert not list(pki.glob(f"minions*/{node_id}")), f"{node_id}'s key is still there"
    assert not list(controller.root.glob(f"var/cache/salt/master/minions/{node_id}")), \
        f"{node_id}'s minion data cache is still there"
