"""Values salt-run and the API refuse alike: bounded numbers and texts, label counts, special
subnets, subnets holding a host's address, and the artifact store's architectures."""

from dataclasses import replace

import pytest
from kubesalt.master.api import model as api
from kubesalt.master.errors import Refused
from kubesalt.master.inventory import artifacts, matrix, spec
from kubesalt.master.ops import provision

from tests.specs import cluster_spec


def fields(exc):
    return [e["field"] for e in exc.value.errors]


# ---- bounded values -----------------------------------------------------------------------

@pytest.mark.parametrize("options, field", [
    ({"installer_ttl_days": 1_000_000_000}, "installer_ttl_days"),
    ({"installer_ttl_days": 36501}, "installer_ttl_days"),
    ({"installer_ttl_days": 0}, "installer_ttl_days"),
    ({"location": "x" * 5000}, "location"),
    ({"location": "a\nb"}, "location"),
    ({"labels": {f"k{i}": "v" for i in range(1000)}}, "labels"),
])
def test_create_refuses_values_the_api_refuses(options, field):
    with pytest.raises(spec.ValidationError) as exc:
        spec.build("edge1", **options)
    assert [e.field for e in exc.value.errors] == [field]


def test_update_bounds_the_merged_labels_and_the_ttl():
    current = spec.build("edge1", labels={f"k{i}": "v" for i in range(60)})
    with pytest.raises(spec.ValidationError) as exc:
        spec.apply_update(current, labels={f"n{i}": "v" for i in range(10)})
    assert [e.field for e in exc.value.errors] == ["labels"]
    with pytest.raises(spec.ValidationError) as exc:
        spec.apply_update(current, installer_ttl_days=10 ** 12)
    assert [e.field for e in exc.value.errors] == ["installer_ttl_days"]


def test_limits_are_the_ones_the_openapi_description_states():
    schemas = api.description()["components"]["schemas"]
    for fun in ("cluster.create", "cluster.update"):
        ttl = schemas[fun]["properties"]["installer_ttl_days"]
        assert (ttl["minimum"], ttl["maximum"]) == (1, spec.MAX_TTL_DAYS)
    assert schemas["Text"]["maxLength"] == spec.MAX_TEXT
    assert schemas["Labels"]["maxProperties"] == spec.MAX_LABELS


@pytest.mark.parametrize("pod, svc, field", [
    ("169.254.0.0/16", "10.96.0.0/12", "pod_subnet"),
    ("224.0.0.0/4", "10.96.0.0/12", "pod_subnet"),
    ("240.0.0.0/16", "10.96.0.0/12", "pod_subnet"),
    ("10.244.0.0/16", "0.0.0.0/12", "service_subnet"),
    ("127.0.0.0/16", "10.96.0.0/12", "pod_subnet"),
])
def test_special_ranges_are_refused(pod, svc, field):
    with pytest.raises(spec.ValidationError) as exc:
        spec.build("edge1", pod_subnet=pod, service_subnet=svc)
    assert [e.field for e in exc.value.errors] == [field]


# ---- subnets against the hosts' addresses at provision -------------------------------------

SPEC = cluster_spec(ha=False, dedicated_master=False, storage="none", blueprint="minimal",
                    cni="calico", pod_subnet="10.77.0.0/16", service_subnet="10.96.0.0/12")
GRAINS = {"os": "Debian", "os_family": "Debian", "kernelrelease": "6.1.0", "cpuarch": "x86_64"}


def test_a_pod_subnet_holding_a_node_is_refused_naming_the_node():
    node = {"id": "node-ab12-10-77-0-11-e", "status": "APPROVED", "address": "10.77.0.11",
            "config": {"roles": ["master"], "address": "10.77.0.11"}}
    with pytest.raises(Refused) as exc:
        provision.validate(SPEC, [node], lambda n: GRAINS)
    (error,) = exc.value.errors
    assert error["field"] == "pod_subnet" and "node-ab12-10-77-0-11-e" in error["message"]


def test_a_service_subnet_holding_the_controller_is_refused():
    spec_ = replace(SPEC, pod_subnet="10.244.0.0/16", service_subnet="10.64.0.0/12")
    node = {"id": "n1", "status": "APPROVED", "address": "192.168.1.5",
            "config": {"roles": ["master"], "address": "192.168.1.5"}}
    with pytest.raises(Refused) as exc:
        provision.validate(spec_, [node], lambda n: GRAINS, controller_addresses=("10.77.0.1",))
    assert fields(exc) == ["service_subnet"] and "controller" in exc.value.errors[0]["message"]
    spec_ok = replace(spec_, service_subnet="10.96.0.0/12")
    assert provision.validate(spec_ok, [node], lambda n: GRAINS,
                              controller_addresses=("10.77.0.1",)) == [node]


# ---- the artifact store ---------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["../../x", "bogus", "x86_64"])
def test_only_known_architectures_reach_the_store(tmp_path, arch):
    store_dir = tmp_path / "artifacts"
    with pytest.raises(ValueError, match="not an architecture"):
        artifacts.sync(store_dir, matrix.default(), "1.30.10", source=str(tmp_path), arch=arch)
    assert not store_dir.exists() and not (tmp_path.parent / "x").exists()


def test_a_source_lacking_files_leaves_the_store_untouched(tmp_path):
    store_dir = tmp_path / "artifacts"
    with pytest.raises(FileNotFoundError, match="missing from the source"):
        artifacts.sync(store_dir, matrix.default(), "1.30.10", source=str(tmp_path / "src"))
    assert not store_dir.exists()
