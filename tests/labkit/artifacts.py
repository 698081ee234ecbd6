"""The lab's artifact source: a directory laid out like the controller's artifact store, for
`salt-run artifacts.sync VERSION source=DIR` (the air-gapped path a real site uses).

Lab nodes have no internet and cannot run real Kubernetes, so the source holds:
- real Debian binaries where they run in a node: containerd (+ shim, ctr), runc, the CNI
  plugins (from the cached `runtime` layer) and etcd/etcdctl (from the `etcd` layer), packed
  in the upstream release layouts the states expect;
- the stand-ins of tests/labkit/bin for what cannot run here: kubeadm, kubelet, kubectl (each
  packed into one file with the standin_common.py they share, and their STANDIN_VERSION line
  rewritten to the requested release), crictl (cri-tools is packaged nowhere we may install
  from) and consul;
- small manifests shaped like the upstream ones (tests/labkit/manifests), for the stand-in API
  server.
Every file gets a <file>.sha256 beside it, which artifacts.sync verifies.
Versions inside the Debian binaries are Debian's (e.g. etcd 3.4), whatever the matrix says:
`describe()` lists what is real and what is a stand-in.
"""

import hashlib
import io
import re
import tarfile
from pathlib import Path

from kubesalt.master.inventory import artifacts as store_artifacts
from kubesalt.master.inventory import matrix as matrix_mod

from . import rootfs

HERE = Path(__file__).resolve().parent
BIN = HERE / "bin"
MANIFESTS = HERE / "manifests"
STANDIN_LINE = re.compile(rb'^STANDIN_VERSION = "[^"]*"$', re.M)
# The region of kubeadm, kubelet and kubectl that loads standin_common.py when they run from the
# source tree; a built stand-in has the file's text in its place.
COMMON = BIN / "standin_common.py"
COMMON_REGION = re.compile(rb"^# ---- shared stand-in code: standin_common\.py -+\n"
                           rb".*?^# ---- end of shared stand-in code -+\n", re.M | re.S)

STANDINS = ("kubeadm", "kubelet", "kubectl", "crictl", "consul")
REAL = ("containerd", "runc", "cni-plugins", "etcd")


def describe():
    return {"real (Debian 12 packages)": list(REAL), "lab stand-ins (tests/labkit/bin)":
            list(STANDINS), "lab manifests (tests/labkit/manifests)":
            ["calico", "cilium", "cert-manager", "rook-ceph"]}


def standin(name, k8s_version=None):
    """A stand-in's bytes as a node gets them, one self-contained file: standin_common.py pasted
    over the region that loads it; Kubernetes stand-ins report `k8s_version`."""
    data = (BIN / name).read_bytes()
    if COMMON_REGION.search(data):
        common = COMMON.read_bytes()
        packed = (b"# ---- shared stand-in code, packed in from standin_common.py by "
                  b"tests/labkit/artifacts.py ----\n" + common.rstrip(b"\n")
                  + b"\n# ---- end of shared stand-in code ----\n")
        data = COMMON_REGION.sub(lambda _match: packed, data, count=1)
    if k8s_version and STANDIN_LINE.search(data):
        data = STANDIN_LINE.sub(f'STANDIN_VERSION = "v{k8s_version}"'.encode(), data, count=1)
    return data


def _tar(members):
    """A gzip tarball of {archive path: (bytes, mode)}, deterministic."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT,
                      compresslevel=1) as archive:
        for name, (data, mode) in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _files(root, names):
    return {name: (root / name).read_bytes() for name in names}


def contents(k8s_version, matrix=None, arch="amd64"):
    """{store path: bytes} for one Kubernetes release."""
    matrix = matrix or matrix_mod.default()
    versions = store_artifacts.component_versions(matrix, k8s_version)
    runtime, etcd_layer = rootfs.layer_dir("runtime"), rootfs.layer_dir("etcd")
    for layer in (runtime, etcd_layer):
        if not (layer / ".complete").exists():
            raise FileNotFoundError(f"{layer} is not built: run `python -m tests.labkit prepare`")
    built = {
        "kubeadm": standin("kubeadm", k8s_version),
        "kubelet": standin("kubelet", k8s_version),
        "kubectl": standin("kubectl", k8s_version),
        "crictl": _tar({"crictl": (standin("crictl"), 0o755)}),
        "consul": standin("consul"),
        "containerd": _tar({f"bin/{name}": (data, 0o755) for name, data in _files(
            runtime / "usr/bin", ("containerd", "containerd-shim-runc-v2", "ctr")).items()}),
        "runc": (runtime / "usr/sbin/runc").read_bytes(),
        "cni_plugins": _tar({f"./{path.name}": (path.read_bytes(), 0o755) for path in sorted(
            (runtime / "usr/lib/cni").iterdir()) if path.is_file()}),
        "etcd": _tar({f"etcd-v{versions['etcd']}-linux-{arch}/{name}": (data, 0o755)
                      for name, data in _files(etcd_layer / "usr/bin",
                                               ("etcd", "etcdctl")).items()}),
    }
    for name, file_name in (("calico_manifest", "calico.yaml"),
                            ("cilium_manifest", "cilium.yaml"),
                            ("cert_manager_manifest", "cert-manager.yaml"),
                            ("rook_ceph_manifests", "rook-ceph.yaml")):
        component = store_artifacts.catalogue()[name]["component"]
        text = (MANIFESTS / file_name).read_text(encoding="utf-8")
        built[name] = text.replace("{version}", str(versions[component])).encode()
    wanted = store_artifacts.wanted(matrix, k8s_version, arch)
    missing = sorted(set(wanted) - set(built))
    if missing:
        raise KeyError(f"the lab source does not build {missing}; add them to "
                       "tests/labkit/artifacts.py")
    return {wanted[name]: data for name, data in built.items() if name in wanted}


def build(dest, k8s_version, matrix=None, arch="amd64"):
    """Write the source directory for `k8s_version` under `dest`; returns {path: sha256}."""
    dest = Path(dest)
    written = {}
    for path, data in contents(k8s_version, matrix, arch).items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        target.with_name(target.name + ".sha256").write_text(f"{digest}  {target.name}\n")
        written[path] = digest
    return written
