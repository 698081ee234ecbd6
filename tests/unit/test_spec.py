import pytest

from kubesalt.master.inventory import matrix
from kubesalt.master.inventory import spec


def fields(exc):
    return [e.field for e in exc.value.errors]


def test_defaults_only():
    s = spec.build("edge1")
    m = matrix.default()
    assert s.k8s_version == m.default_k8s_version
    assert (s.pod_subnet, s.service_subnet, s.cni) == ("10.244.0.0/16", "10.96.0.0/12", "calico")
    assert s.installer_ttl_days == 365
    assert s.blueprint_version == m.default_blueprint_version("default-upstream")
    assert s.storage == "rook-ceph" and s.proxy is None
    assert s.cluster_type == "converged-single-master"


def test_minor_version_resolves_to_newest_patch():
    assert spec.build("a", k8s_version="1.30").k8s_version == "1.30.10"
    assert spec.build("a", k8s_version="v1.29.14").k8s_version == "1.29.14"


def test_every_problem_reported_at_once():
    with pytest.raises(spec.ValidationError) as exc:
        spec.build("BAD", k8s_version="9.9", cni="weave", installer_ttl_days=0,
                   pod_subnet="x")
    assert set(fields(exc)) >= {"name", "k8s_version", "cni", "installer_ttl_days",
                                "pod_subnet"}


@pytest.mark.parametrize("name", ["a" * 33, "-a", "a-", "a_b", "A", "", "a.b"])
def test_bad_names(name):
    with pytest.raises(spec.ValidationError) as exc:
        spec.build(name)
    assert fields(exc) == ["name"]


@pytest.mark.parametrize("pod,svc,field", [
    ("10.0.0.0/8", "10.96.0.0/12", "service_subnet"),
    ("10.244.0.0/25", "10.96.0.0/12", "pod_subnet"),
    ("10.244.0.0/16", "10.0.0.0/8", "service_subnet"),
    ("fd00::/64", "10.96.0.0/12", "pod_subnet"),
    ("127.0.0.0/8", "10.96.0.0/12", "pod_subnet"),
])
def test_bad_subnets(pod, svc, field):
    with pytest.raises(spec.ValidationError) as exc:
        spec.build("a", pod_subnet=pod, service_subnet=svc)
    assert field in fields(exc)


def test_proxy_is_validated_and_normalised():
    s = spec.build("a", proxy={"http": "http://p:3128", "no_proxy": ["10.0.0.0/8", ".svc"]})
    assert s.proxy.no_proxy == "10.0.0.0/8,.svc"
    with pytest.raises(spec.ValidationError) as exc:
        spec.build("a", proxy={"http": "http://p:notaport", "colour": "red",
                               "root_ca": "not a cert"})
    assert set(fields(exc)) == {"proxy.http", "proxy.colour", "proxy.root_ca"}


def test_unknown_option_named():
    with pytest.raises(spec.ValidationError) as exc:
        spec.build("a", k8s_verison="1.30")
    assert fields(exc) == ["k8s_verison"]


def test_update_merges_labels_and_refuses_networking():
    s = spec.build("a", labels={"x": "1", "y": "2"})
    s2 = spec.apply_update(s, labels={"z": "3", "y": None})
    assert s2.labels == {"x": "1", "z": "3"}
    for key, value in (("cni", "cilium"), ("pod_subnet", "10.1.0.0/16"), ("proxy", {})):
        with pytest.raises(spec.ValidationError) as exc:
            spec.apply_update(s, **{key: value})
        assert "cannot be changed once the cluster is created" in str(exc.value)
    with pytest.raises(spec.ValidationError):
        spec.apply_update(s, ha=True)


def test_round_trip_through_dict():
    s = spec.build("a", proxy={"https": "https://p:443", "no_proxy": "10.0.0.0/8"})
    assert spec.ClusterSpec.from_dict(s.to_dict()) == s
