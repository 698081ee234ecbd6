"""Formula layout: each component that installs something on the node has a clean.sls beside
its init.sls, and kubesalt.reset is those clean.sls in the reverse order of the provisioning
plan. Rendered with the same harness as test_render.py."""

import re

import pytest

from kubesalt.master.ops import plan

from . import matrix
from .renderer import STATES_DIR, Renderer, flatten, quiet_salt_logs
from .test_render import broken_requisites

ROLES = ("first master", "other master", "worker", "storage")

# What kubesalt.reset rendered before it was split into the components' clean.sls (captured
# from that tree for every role): (state function, name) on every OS family, plus the trust
# store's anchor and update command of each family.
RESET_BEFORE = {
    ("cmd.run", "/usr/local/bin/kubeadm reset --force --cri-socket "
                "unix:///run/containerd/containerd.sock"),
    ("file.absent", "/etc/cni/net.d"),
    ("file.absent", "/etc/consul.d"),
    ("file.absent", "/etc/containerd"),
    ("file.absent", "/etc/crictl.yaml"),
    ("file.absent", "/etc/etcd/pki"),
    ("file.absent", "/etc/kubernetes"),
    ("file.absent", "/etc/kubesalt"),
    ("file.absent", "/etc/modules-load.d/kubesalt.conf"),
    ("file.absent", "/etc/sysctl.d/99-kubesalt.conf"),
    ("file.absent", "/etc/systemd/system/consul.service"),
    ("file.absent", "/etc/systemd/system/containerd.service"),
    ("file.absent", "/etc/systemd/system/containerd.service.d"),
    ("file.absent", "/etc/systemd/system/etcd.service"),
    ("file.absent", "/etc/systemd/system/kubelet.service"),
    ("file.absent", "/etc/systemd/system/kubelet.service.d"),
    ("file.absent", "/opt/cni/bin"),
    ("file.absent", "/usr/local/bin/consul"),
    ("file.absent", "/usr/local/bin/containerd"),
    ("file.absent", "/usr/local/bin/containerd-shim-runc-v2"),
    ("file.absent", "/usr/local/bin/containerd-stress"),
    ("file.absent", "/usr/local/bin/crictl"),
    ("file.absent", "/usr/local/bin/ctr"),
    ("file.absent", "/usr/local/bin/etcd"),
    ("file.absent", "/usr/local/bin/etcdctl"),
    ("file.absent", "/usr/local/bin/kubeadm"),
    ("file.absent", "/usr/local/bin/kubectl"),
    ("file.absent", "/usr/local/bin/kubelet"),
    ("file.absent", "/usr/local/sbin/runc"),
    ("file.absent", "/var/cache/kubesalt"),
    ("file.absent", "/var/lib/consul"),
    ("file.absent", "/var/lib/etcd"),
    ("file.absent", "/var/lib/kubelet"),
    ("file.managed", "/etc/resolv.conf"),
    ("module.run", "Reload systemd after removing the units"),
    ("service.dead", "consul"),
    ("service.dead", "containerd"),
    ("service.dead", "etcd"),
    ("service.dead", "kubelet"),
}
RESET_BEFORE_BY_FAMILY = {
    "Debian": {("cmd.run", "update-ca-certificates"),
               ("file.absent", "/usr/local/share/ca-certificates/kubesalt-proxy-ca.crt")},
    "Ubuntu": {("cmd.run", "update-ca-certificates"),
               ("file.absent", "/usr/local/share/ca-certificates/kubesalt-proxy-ca.crt")},
    "RedHat": {("cmd.run", "update-ca-trust extract"),
               ("file.absent", "/etc/pki/ca-trust/source/anchors/kubesalt-proxy-ca.crt")},
    "Suse": {("cmd.run", "update-ca-certificates"),
             ("file.absent", "/etc/pki/trust/anchors/kubesalt-proxy-ca.crt")},
}


def clean_components():
    """Component directories with a clean.sls, e.g. {"etcd", "kubeadm", ...}."""
    return {path.parent.name for path in STATES_DIR.joinpath("kubesalt").glob("*/clean.sls")}


def components_in_plan_order():
    """Component directories in the order provisioning first applies one of their SLS."""
    out = []
    for stage in plan.PLANS["provision"]:
        if stage.sls:
            component = stage.sls.split(".")[1]
            if component not in out:
                out.append(component)
    return out


def configuration(os_name, role):
    return next(c for c in matrix.configurations(os_name)
                if c["type"] == "dedicated-multi-master" and c["role"] == role)


@pytest.fixture(scope="module", params=list(matrix.OS_GRAINS))
def os_name(request):
    return request.param


@pytest.fixture(scope="module")
def renderer(tmp_path_factory, os_name):
    """One renderer per OS family, one at a time: Salt's Jinja loader keeps the file client
    of the HighState created last."""
    with quiet_salt_logs():
        r = Renderer(tmp_path_factory.mktemp(f"formula-{os_name}"),
                     configuration(os_name, "worker")["grains"])
        yield r
        r.close()


def render(renderer, sls, conf, pillar=None):
    high, errors = renderer.render(sls, conf["grains"],
                                   conf["pillar"] if pillar is None else pillar)
    assert not errors, f"{sls} on {conf['os']} {conf['role']}: {errors}"
    return high


def test_reset_removes_what_it_removed_before_the_split(renderer, os_name):
    for role in ROLES:
        conf = configuration(os_name, role)
        states = flatten(render(renderer, "kubesalt.reset", conf))
        rendered = {(s["fun"], s["args"].get("name", sid)) for sid, s in states.items()}
        assert rendered == RESET_BEFORE | RESET_BEFORE_BY_FAMILY[os_name], (os_name, role)


def test_reset_includes_every_clean_sls_in_reverse_plan_order(renderer, os_name):
    text = STATES_DIR.joinpath("kubesalt", "reset.sls").read_text()
    included = re.findall(r"^  - kubesalt\.(\w+)\.clean$", text, re.MULTILINE)
    assert set(included) == clean_components()
    order = components_in_plan_order()
    assert clean_components() <= set(order), "a clean.sls of a component the plan never applies"
    assert included == [c for c in reversed(order) if c in clean_components()]

    # and that is the order the states run in: kubeadm reset, kubelet stopped first
    high = render(renderer, "kubesalt.reset", configuration(os_name, "first master"))
    chunks, errors = renderer.highstate.state.compile_high_data(high)
    assert not errors, errors
    ran = [chunk["__sls__"].split(".")[1] for chunk in chunks]
    assert [c for i, c in enumerate(ran) if c not in ran[:i]] == included + ["reset"]
    assert chunks[0]["__id__"] == "Reset kubeadm on this node"
    stopped = [chunk["name"] for chunk in chunks if chunk["state"] == "service"]
    assert stopped == ["kubelet", "etcd", "consul", "containerd"]


@pytest.mark.parametrize("component", sorted(clean_components()))
def test_each_clean_sls_renders_alone_for_every_role(renderer, os_name, component):
    sls = f"kubesalt.{component}.clean"
    for role in ROLES:
        states = flatten(render(renderer, sls, configuration(os_name, role)))
        assert states and not broken_requisites(states), (sls, role)
        assert {s["fun"].split(".")[1] for s in states.values()} <= {
            "absent", "dead", "run", "managed"}, (sls, role)
    # a node that was never configured has no pillar at all
    assert flatten(render(renderer, sls, configuration(os_name, "worker"), {}))
