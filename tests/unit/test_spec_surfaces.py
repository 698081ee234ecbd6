"""The cluster options are written in four places: ClusterSpec, the OpenAPI create and update
schemas, and the README's options table. These tests hold them to ClusterSpec, so an option
added in one place and forgotten in another fails here, and production code reads the typed
spec rather than a raw record."""

import dataclasses
import pathlib
import re
import typing

import yaml

from kubesalt.master.api import model as api
from kubesalt.master.inventory import spec as spec_mod

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS = yaml.safe_load(api.OPENAPI.read_text())["components"]["schemas"]
REQUEST_KEYS = {"client", "fun", "name"}
HINTS = typing.get_type_hints(spec_mod.ClusterSpec)
OPTIONS = {f.name for f in dataclasses.fields(spec_mod.ClusterSpec)} - {"name"}


def _schema_for(field):
    kind = HINTS[field]
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer", "minimum": 1, "maximum": spec_mod.MAX_TTL_DAYS}
    if kind is dict:
        return {"$ref": "#/components/schemas/Labels"}
    if kind == (spec_mod.Proxy | None):
        return {"$ref": "#/components/schemas/Proxy"}
    assert kind is str, f"{field}: no schema rule for {kind}"
    return {"$ref": "#/components/schemas/Text"}


def test_the_create_schema_has_every_option_with_its_type():
    properties = SCHEMAS["cluster.create"]["properties"]
    assert set(properties) - REQUEST_KEYS == OPTIONS
    for field in OPTIONS:
        assert properties[field] == _schema_for(field), field


def test_the_update_schema_has_what_update_takes_or_refuses_with_a_message():
    properties = SCHEMAS["cluster.update"]["properties"]
    expected = set(spec_mod.UPDATABLE) | set(spec_mod.IMMUTABLE_NETWORKING) | {"k8s_version"}
    assert set(properties) - REQUEST_KEYS == expected
    for field in expected:
        assert properties[field] == _schema_for(field), field


def test_the_proxy_schema_has_every_proxy_setting():
    fields = {f.name for f in dataclasses.fields(spec_mod.Proxy)}
    assert set(SCHEMAS["Proxy"]["properties"]) == fields


def _readme_options_table():
    text = (ROOT / "README.md").read_text()
    section = text.split("### Cluster options", 1)[1].split("\n\n", 2)[1]
    return [row.split("|")[1:4] for row in section.splitlines()[2:]]


def test_the_readme_table_names_every_option_its_defaults_and_proxy_settings():
    rows = _readme_options_table()
    named = {name for option, _, _ in rows for name in re.findall(r"`(\w+)`", option)}
    assert named == OPTIONS
    defaults = " ".join(default for _, default, _ in rows)
    for value in (spec_mod.DEFAULT_OS, spec_mod.DEFAULT_POD_SUBNET,
                  spec_mod.DEFAULT_SERVICE_SUBNET, str(spec_mod.DEFAULT_TTL_DAYS)):
        assert f"`{value}`" in defaults, value
    proxy_notes = next(notes for option, _, notes in rows if "`proxy`" in option)
    listed = re.search(r"`\{([^}]*)\}`", proxy_notes).group(1)
    assert {s.strip() for s in listed.split(",")} == \
        {f.name for f in dataclasses.fields(spec_mod.Proxy)}


def test_production_code_reads_the_typed_spec_not_a_raw_record():
    raw = []
    for folder in ("master", "runners", "pillar"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "master" / "inventory" / "store.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if '["spec"]' in line or "['spec']" in line:
                    raw.append(f"{path.relative_to(ROOT)}:{number}")
    assert not raw, f"raw spec reads (use Store.cluster(...).spec): {raw}"
