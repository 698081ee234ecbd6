"""The cluster specification: its fields, defaults, validation and the rules for changing it.

Plain Python so unit tests and every runner share one definition. Validation collects every
problem at once; each error names the field and says what would be accepted.
"""

import dataclasses
import ipaddress
import re
import urllib.parse

from cryptography import x509

from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.minion_bootstrap import supported_os

CLUSTER_TYPES = {
    # (ha, dedicated_master) -> (type name, masters, workers that must be dedicated)
    (False, False): ("converged-single-master", 1, 0),
    (False, True): ("dedicated-single-master", 1, 1),
    (True, False): ("converged-multi-master", 3, 0),
    (True, True): ("dedicated-multi-master", 3, 1),
}

CNIS = ("calico", "cilium")
# Cilium needs kernel >= 4.19.57, which RHEL/CentOS 7 never shipped.
CILIUM_UNSUPPORTED_OS = ("rhel-7", "centos-7")
DEFAULT_OS = "ubuntu-22.04"
DEFAULT_POD_SUBNET = "10.244.0.0/16"
DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"
DEFAULT_TTL_DAYS = 365
# Limits shared with master/api/openapi.yaml (a unit test holds the two together): salt-run and
# the REST API accept exactly the same values.
MAX_TTL_DAYS = 36500
MAX_TEXT = 1024
MAX_LABELS = 64
# The node hostname is node-<id>-<ip-with-dashes>-<cluster> and must stay one DNS label (63).
MAX_NAME_LENGTH = 32
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_NO_PROXY_ENTRY = re.compile(r"^[A-Za-z0-9.*:_/\[\]-]+$")
# Ranges a pod or service subnet may not touch: hosts, routers and the kernel treat their
# addresses specially, so cluster traffic in them is dropped or misrouted.
_SPECIAL_RANGES = (
    (ipaddress.ip_network("0.0.0.0/8"), "'this network' range 0.0.0.0/8"),
    (ipaddress.ip_network("127.0.0.0/8"), "loopback range 127.0.0.0/8"),
    (ipaddress.ip_network("169.254.0.0/16"), "link-local range 169.254.0.0/16"),
    (ipaddress.ip_network("224.0.0.0/4"), "multicast range 224.0.0.0/4"),
    (ipaddress.ip_network("240.0.0.0/4"), "reserved range 240.0.0.0/4"),
)

UPDATABLE = ("labels", "location", "auto_approve", "blueprint_version", "reset_enabled",
             "installer_ttl_days")
IMMUTABLE_NETWORKING = ("proxy", "pod_subnet", "service_subnet", "cni")


class FieldError(ValueError):
    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def as_dict(self):
        return {"field": self.field, "message": self.message}


class ValidationError(ValueError):
    """Every problem found in one request; nothing was stored."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))

    def as_dict(self):
        return [e.as_dict() for e in self.errors]


@dataclasses.dataclass
class Proxy:
    http: str = ""
    https: str = ""
    no_proxy: str = ""
    root_ca: str = ""


@dataclasses.dataclass
class ClusterSpec:
    name: str
    k8s_version: str
    os: str = DEFAULT_OS
    blueprint: str = "default-upstream"
    blueprint_version: str = ""
    storage: str = "rook-ceph"
    location: str = ""
    labels: dict = dataclasses.field(default_factory=dict)
    auto_approve: bool = False
    ha: bool = False
    dedicated_master: bool = False
    installer_ttl_days: int = DEFAULT_TTL_DAYS
    proxy: Proxy | None = None
    cni: str = "calico"
    pod_subnet: str = DEFAULT_POD_SUBNET
    service_subnet: str = DEFAULT_SERVICE_SUBNET
    reset_enabled: bool = False

    @property
    def cluster_type(self):
        return CLUSTER_TYPES[(self.ha, self.dedicated_master)][0]

    @property
    def required_nodes(self):
        _, masters, workers = CLUSTER_TYPES[(self.ha, self.dedicated_master)]
        return {"masters": masters, "dedicated_workers": workers, "total": masters + workers}

    @property
    def min_storage_nodes(self):
        """Storage nodes a blueprint with storage needs: a replica per master."""
        return 3 if self.ha else 1

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        if data.get("proxy"):
            data["proxy"] = Proxy(**data["proxy"])
        return cls(**data)


# ---- coercion of salt-run arguments (the CLI hands us YAML-parsed values) -----------------

def _as_bool(field, value, errors):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    errors.append(FieldError(field, f"{value!r} is not a boolean; use True or False"))
    return False


def _as_days(field, value, errors):
    """A whole number of days from 1 to MAX_TTL_DAYS (credentials' validity must fit a
    certificate's notAfter)."""
    days = None
    if not isinstance(value, bool):
        try:
            days = int(str(value).strip())
        except ValueError:
            pass
    if days is None:
        errors.append(FieldError(field, f"{str(value)[:40]!r} is not a whole number of days"))
        return DEFAULT_TTL_DAYS
    if not 1 <= days <= MAX_TTL_DAYS:
        errors.append(FieldError(field, f"{days} is out of range; installer credentials are "
                                        f"valid for 1 to {MAX_TTL_DAYS} days"))
    return days


def _as_text(field, value, errors):
    text = "" if value is None else str(value)
    if isinstance(value, (dict, list)) or len(text) > MAX_TEXT or "\n" in text \
            or "\x00" in text:
        errors.append(FieldError(field, f"must be one line of at most {MAX_TEXT} characters"))
        return ""
    return text


def _as_mapping(field, value, errors, example):
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    errors.append(FieldError(field, f"{value!r} is not a mapping; pass it as {example}"))
    return {}


# ---- field checks --------------------------------------------------------------------------

def check_name(name, errors):
    if not isinstance(name, str) or not _DNS_LABEL.match(name) or len(name) > MAX_NAME_LENGTH:
        errors.append(FieldError(
            "name",
            f"{name!r} is not a valid cluster name; use lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {MAX_NAME_LENGTH} characters "
            "(it becomes part of every node's hostname)"))


def _check_cidr(field, value, errors):
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        errors.append(FieldError(field, f"{value!r} is not a valid IPv4 CIDR ({exc}); "
                                        "use a network address such as 10.244.0.0/16"))
        return None
    if net.version != 4:
        errors.append(FieldError(field, f"{value!r} is IPv6; only IPv4 subnets are supported"))
        return None
    for special, described in _SPECIAL_RANGES:
        if net.overlaps(special):
            errors.append(FieldError(field, f"{value} overlaps the {described}; choose a "
                                            "private range such as 10.244.0.0/16"))
            return None
    return net


def check_subnets(pod_subnet, service_subnet, errors):
    pod = _check_cidr("pod_subnet", pod_subnet, errors)
    svc = _check_cidr("service_subnet", service_subnet, errors)
    # kubeadm hands every node a /24 of the pod subnet.
    if pod is not None and pod.prefixlen > 24:
        errors.append(FieldError("pod_subnet", f"{pod} is too small: each node gets a /24 from "
                                               "it, so use /24 or larger (e.g. /16)"))
        pod = None
    # kube-apiserver refuses service ranges wider than /12.
    if svc is not None and svc.prefixlen < 12:
        errors.append(FieldError("service_subnet", f"{svc} is too large: Kubernetes accepts at "
                                                   "most a /12 for services"))
        svc = None
    if pod is not None and svc is not None and pod.overlaps(svc):
        errors.append(FieldError("service_subnet", f"{svc} overlaps pod_subnet {pod}; the two "
                                                   "ranges must be disjoint"))


def _check_proxy_url(field, value, errors):
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        errors.append(FieldError(field, f"{value!r} is not a proxy URL; use "
                                        "http://host:port or https://host:port"))
        return
    try:
        parsed.port  # noqa: B018 - urllib raises on a malformed port only when asked
    except ValueError:
        errors.append(FieldError(field, f"{value!r} has an invalid port"))


def _check_root_ca(value, errors):
    try:
        x509.load_pem_x509_certificate(value.encode())
    except (ValueError, TypeError):
        errors.append(FieldError("proxy.root_ca", "is not a PEM certificate; paste the proxy's "
                                                  "CA certificate including the BEGIN/END lines"))


def check_proxy(raw, errors):
    proxy = _as_mapping("proxy", raw, errors, "proxy='{http: http://proxy:3128, no_proxy: ...}'")
    if not proxy:
        return None
    unknown = set(proxy) - {f.name for f in dataclasses.fields(Proxy)}
    for key in sorted(unknown):
        if key == "tls_termination":
            errors.append(FieldError("proxy.tls_termination", "is not a setting: nodes trust a "
                                     "proxy that terminates TLS through its root CA; give it "
                                     "as root_ca instead"))
            continue
        errors.append(FieldError(f"proxy.{key}", "unknown proxy setting; use http, https, "
                                                 "no_proxy, root_ca"))
    result = Proxy()
    for key in ("http", "https"):
        if proxy.get(key):
            _check_proxy_url(f"proxy.{key}", str(proxy[key]), errors)
            setattr(result, key, str(proxy[key]))
    if not (result.http or result.https):
        errors.append(FieldError("proxy", "needs at least an http or https proxy URL"))
    no_proxy = proxy.get("no_proxy", "")
    if isinstance(no_proxy, (list, tuple)):
        no_proxy = ",".join(str(x) for x in no_proxy)
    entries = [e.strip() for e in str(no_proxy).split(",") if e.strip()]
    for entry in entries:
        if not _NO_PROXY_ENTRY.match(entry):
            errors.append(FieldError("proxy.no_proxy", f"{entry!r} is not a host, domain or CIDR"))
    result.no_proxy = ",".join(entries)
    if proxy.get("root_ca"):
        _check_root_ca(str(proxy["root_ca"]), errors)
        result.root_ca = str(proxy["root_ca"])
    return result


def check_labels(raw, errors, allow_removal=False):
    labels = _as_mapping("labels", raw, errors, "labels='{env: prod, team: edge}'")
    if len(labels) > MAX_LABELS:
        errors.append(FieldError("labels", f"{len(labels)} labels; a cluster has at most "
                                           f"{MAX_LABELS}"))
        return {}
    clean = {}
    for raw_key, raw_value in labels.items():
        key, value = str(raw_key), raw_value
        prefix, _, name = key.rpartition("/")
        if (not _LABEL_NAME.match(name) or len(name) > 63
                or (prefix and (not _LABEL_PREFIX.match(prefix) or len(prefix) > 253))):
            errors.append(FieldError(f"labels.{key}", "is not a valid Kubernetes label key "
                                                      "([prefix/]name, name at most 63 of "
                                                      "[A-Za-z0-9-_.])"))
            continue
        if value is None and allow_removal:
            clean[key] = None
            continue
        value = "" if raw_value is None else str(raw_value)
        if value and (not _LABEL_NAME.match(value) or len(value) > 63):
            errors.append(FieldError(f"labels.{key}", f"value {value!r} is not a valid label "
                                                      "value (at most 63 of [A-Za-z0-9-_.])"))
            continue
        clean[key] = value
    return clean


def _check_blueprint(spec, matrix, errors, storage_given):
    blueprint = matrix.blueprint(spec.blueprint)
    if blueprint is None:
        errors.append(FieldError("blueprint", f"{spec.blueprint!r} is unknown; choose one of "
                                              f"{', '.join(sorted(matrix.blueprints))}"))
        return
    if not spec.blueprint_version:
        spec.blueprint_version = matrix.default_blueprint_version(spec.blueprint)
    elif str(spec.blueprint_version) not in blueprint["versions"]:
        errors.append(FieldError("blueprint_version",
                                 f"{spec.blueprint_version!r} is not a version of "
                                 f"{spec.blueprint}; choose one of "
                                 f"{', '.join(blueprint['versions'])}"))
    managed = blueprint["storage"]
    if not storage_given:
        spec.storage = managed
    elif spec.storage != managed:
        errors.append(FieldError("storage", f"the {spec.blueprint} blueprint manages its own "
                                            f"storage ({managed}); {spec.storage!r} cannot "
                                            "replace it"))


def build(name, matrix=None, **options):
    """Validate create-time options and return a complete ClusterSpec with every default."""
    matrix = matrix or matrix_mod.default()
    errors = []
    known = {f.name for f in dataclasses.fields(ClusterSpec)} - {"name"}
    for key in sorted(set(options) - known):
        errors.append(FieldError(key, "unknown option; valid options are "
                                      f"{', '.join(sorted(known))}"))
    check_name(name, errors)

    requested = options.get("k8s_version") or matrix.default_k8s_version
    k8s_version = matrix.resolve_k8s_version(requested)
    if k8s_version is None:
        errors.append(FieldError("k8s_version", f"{requested!r} is not supported; choose one of "
                                                f"{', '.join(matrix.k8s_versions)}"))
    os_id = str(options.get("os") or DEFAULT_OS)
    if os_id not in supported_os.os_ids():
        errors.append(FieldError("os", f"{os_id!r} is not supported; choose one of "
                                       f"{', '.join(supported_os.os_ids())}"))
    cni = str(options.get("cni") or "calico")
    if cni not in CNIS:
        errors.append(FieldError("cni", f"{cni!r} is not supported; choose calico or cilium"))
    elif cni == "cilium" and os_id in CILIUM_UNSUPPORTED_OS:
        errors.append(FieldError("cni", f"cilium needs kernel 4.19.57 or newer, which {os_id} "
                                        "does not have; use calico"))
    ttl = _as_days("installer_ttl_days",
                   options.get("installer_ttl_days", DEFAULT_TTL_DAYS), errors)
    pod_subnet = str(options.get("pod_subnet") or DEFAULT_POD_SUBNET)
    service_subnet = str(options.get("service_subnet") or DEFAULT_SERVICE_SUBNET)
    check_subnets(pod_subnet, service_subnet, errors)

    spec = ClusterSpec(
        name=name,
        k8s_version=k8s_version or str(requested),
        os=os_id,
        blueprint=str(options.get("blueprint") or "default-upstream"),
        blueprint_version=str(options.get("blueprint_version") or ""),
        storage=str(options.get("storage") or ""),
        location=_as_text("location", options.get("location"), errors),
        labels=check_labels(options.get("labels"), errors),
        auto_approve=_as_bool("auto_approve", options.get("auto_approve", False), errors),
        ha=_as_bool("ha", options.get("ha", False), errors),
        dedicated_master=_as_bool("dedicated_master", options.get("dedicated_master", False),
                                  errors),
        installer_ttl_days=ttl,
        proxy=check_proxy(options.get("proxy"), errors),
        cni=cni,
        pod_subnet=pod_subnet,
        service_subnet=service_subnet,
        reset_enabled=_as_bool("reset_enabled", options.get("reset_enabled", False), errors),
    )
    _check_blueprint(spec, matrix, errors, storage_given=bool(options.get("storage")))
    if errors:
        raise ValidationError(errors)
    return spec


def apply_update(spec, matrix=None, **changes):
    """Return a new ClusterSpec with `changes` applied, or raise ValidationError.

    Labels merge into the existing ones (a label set to None is removed), so concurrent
    updates that each add a label all survive.
    """
    matrix = matrix or matrix_mod.default()
    errors = []
    for key in sorted(changes):
        if key in IMMUTABLE_NETWORKING:
            errors.append(FieldError(key, "cannot be changed once the cluster is created; "
                                          "create a new cluster with the setting you need"))
        elif key == "k8s_version":
            errors.append(FieldError(key, "is changed by an upgrade, not an update; use "
                                          "salt-run cluster.upgrade"))
        elif key not in UPDATABLE:
            errors.append(FieldError(key, f"cannot be updated; updatable settings are "
                                          f"{', '.join(UPDATABLE)}"))
    data = spec.to_dict()
    if "labels" in changes:
        delta = check_labels(changes["labels"], errors, allow_removal=True)
        labels = dict(spec.labels)
        for key, value in delta.items():
            if value is None:
                labels.pop(key, None)
            else:
                labels[key] = value
        if len(labels) > MAX_LABELS:
            errors.append(FieldError("labels", f"the cluster would have {len(labels)} labels; "
                                               f"at most {MAX_LABELS}"))
        data["labels"] = labels
    if "location" in changes:
        data["location"] = _as_text("location", changes["location"], errors)
    for key in ("auto_approve", "reset_enabled"):
        if key in changes:
            data[key] = _as_bool(key, changes[key], errors)
    if "installer_ttl_days" in changes:
        data["installer_ttl_days"] = _as_days("installer_ttl_days",
                                              changes["installer_ttl_days"], errors)
    if "blueprint_version" in changes:
        version = str(changes["blueprint_version"])
        allowed = matrix.blueprint(spec.blueprint)["versions"]
        if version not in allowed:
            errors.append(FieldError("blueprint_version", f"{version!r} is not a version of "
                                                          f"{spec.blueprint}; choose one of "
                                                          f"{', '.join(allowed)}"))
        data["blueprint_version"] = version
    if errors:
        raise ValidationError(errors)
    return ClusterSpec.from_dict(data)


def redact_url(url):
    """A proxy URL fit to show: a password in it becomes ***."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.password is None:
        return url
    host = parsed.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parsed._replace(netloc=f"{parsed.username}:***@{host}"))


def describe(spec, matrix=None):
    """Every setting with its effective value, plus what follows from them. Proxy passwords
    are secrets (nodes get them in their own pillar only): shown as ***."""
    matrix = matrix or matrix_mod.default()
    data = spec.to_dict()
    if data["proxy"]:
        for key in ("http", "https"):
            data["proxy"][key] = redact_url(data["proxy"][key])
    data["type"] = spec.cluster_type
    data["nodes_required"] = spec.required_nodes
    data["components"] = matrix.components(spec.k8s_version)
    return data
