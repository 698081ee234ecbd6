"""The lab's cached root filesystems: a Debian bookworm minbase, plus package layers.

Built once per machine under CACHE (outside any checkout) and shared read-only by every node
as overlayfs lower layers. A layer is built by booting nothing: `systemd-nspawn --pipe` runs
apt-get in an overlay of the base with the host's network, and the overlay's upper directory
becomes the layer.
"""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path(os.environ.get("KUBESALT_LAB_CACHE", "/var/cache/kubesalt-lab"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "iproute2", "python3", "python3-venv", "procps",
    "ca-certificates", "openssl",
    # what kubeadm's preflight and the provisioning states expect on a node
    "conntrack", "iptables", "kmod", "mount", "util-linux", "tar", "gzip",
)
# Layers stack in this order above the base: (packages, shell run after installing them).
LAYERS = {
    "chrony": (("chrony", "faketime"), "systemctl disable chrony || true"),
    # Debian starts a default etcd member at boot and leaves its data behind: a lab node must
    # look like a clean machine (conjurer's prechecks refuse a node with /var/lib/etcd data).
    "etcd": (("etcd-server", "etcd-client"),
             "systemctl disable etcd || true; rm -rf /var/lib/etcd/*"),
    # The kubeadm, kubelet and kubectl stand-ins (tests/labkit/bin) read and write YAML with it.
    "python": (("python3-yaml",), "true"),
}
# Built like LAYERS but never part of a node: what the lab's artifact source (tests/labkit/
# artifacts.py) packs for the states to install, as a real site's artifact store would hold
# upstream releases. Debian's containerd, runc and CNI plugins are real and run in a node.
ARTIFACT_LAYERS = {
    "runtime": (("containerd", "runc", "containernetworking-plugins"),
                "systemctl disable containerd || true"),
}


def base_dir():
    return CACHE / "base"


def layer_dir(name):
    return CACHE / "layers" / name


def lower_dirs():
    """Overlay lowerdir list, topmost first."""
    return [layer_dir(n) for n in reversed(list(LAYERS))] + [base_dir()]


def _run(argv, **kwargs):
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, **kwargs)


def build_base():
    target = base_dir()
    if (target / ".complete").exists():
        return False
    tmp = CACHE / "base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), SUITE,
          str(tmp), MIRROR], stdout=subprocess.DEVNULL)
    # Lab nodes never reach the internet; lists are dead weight in every node.
    shutil.rmtree(tmp / "var/lib/apt/lists", ignore_errors=True)
    (tmp / "var/lib/apt/lists/partial").mkdir(parents=True)
    for path in (tmp / "var/cache/apt/archives").glob("*.deb"):
        path.unlink()
    # Per-node identity is written at boot; an empty machine-id makes systemd generate none.
    (tmp / "etc/machine-id").write_text("")
    _enable_networkd(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    (target / ".complete").write_text("")
    return True


def _enable_networkd(root):
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "systemd-networkd.service"
    if not link.exists():
        link.symlink_to("/lib/systemd/system/systemd-networkd.service")
    # Nodes have no DNS server; resolved would only wait for one.
    for unit in ("systemd-resolved.service", "apt-daily.timer", "apt-daily-upgrade.timer"):
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        mask = root / "etc/systemd/system" / unit
        mask.symlink_to("/dev/null")


def _stamp(*parts):
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def build_layer(name, packages, post, below):
    target = layer_dir(name)
    stamp = _stamp(packages, post)
    done = target / ".complete"
    if done.exists() and done.read_text() == stamp:
        return False
    work = CACHE / "layers" / f".{name}.work"
    shutil.rmtree(work, ignore_errors=True)
    upper, workdir, merged = work / "upper", work / "work", work / "merged"
    for directory in (upper, workdir, merged):
        directory.mkdir(parents=True)
    lower = ":".join(str(d) for d in below)
    _run(["mount", "-t", "overlay", "overlay", "-o",
          f"lowerdir={lower},upperdir={upper},workdir={workdir}", str(merged)])
    try:
        shutil.copyfile("/etc/resolv.conf", merged / "etc/resolv.conf.lab")
        script = ("set -e; cp /etc/resolv.conf.lab /etc/resolv.conf; apt-get update -qq; "
                  "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                  "--no-install-recommends " + " ".join(packages) + " >/dev/null; "
                  + post + "; apt-get clean; rm -rf /var/lib/apt/lists/*; "
                  "mkdir -p /var/lib/apt/lists/partial; rm -f /etc/resolv.conf.lab; "
                  ": > /etc/resolv.conf")
        _run(["systemd-nspawn", "--quiet", "--pipe", "--register=no", "--keep-unit",
              "-D", str(merged), "/bin/sh", "-c", script])
    finally:
        _run(["umount", str(merged)])
    shutil.rmtree(target, ignore_errors=True)
    upper.rename(target)
    shutil.rmtree(work, ignore_errors=True)
    done.write_text(stamp)
    return True


def prepare():
    """Build whatever is missing; returns the names built."""
    built = []
    if build_base():
        built.append("base")
    below = [base_dir()]
    for name, (packages, post) in LAYERS.items():
        if build_layer(name, packages, post, list(reversed(below))):
            built.append(name)
        below.append(layer_dir(name))
    for name, (packages, post) in ARTIFACT_LAYERS.items():
        if build_layer(name, packages, post, [base_dir()]):
            built.append(name)
    return built
