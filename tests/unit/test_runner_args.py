"""One set of argument rules for every kubesalt runner (salt-run and the REST API alike)."""

import pytest

from kubesalt.master.verbs import args as runner_args
from kubesalt.master.errors import Refused


def provision(name, wait=False, timeout=3600):
    return name, wait, timeout


def create(name, **options):
    return name, options


def sync(version, source=None, arch="amd64"):
    return version, source, arch


def _fields(call):
    with pytest.raises(Refused) as caught:
        call()
    return [e["field"] for e in caught.value.errors]


def test_positional_and_keywords_bind_like_python():
    values, options = runner_args.bind(provision, "cluster.provision", ["edge1"],
                                       {"wait": "True", "timeout": "60"})
    assert values == {"name": "edge1", "wait": True, "timeout": 60.0} and options == {}


@pytest.mark.parametrize("kwargs", [{"wiat": True}, {"name": "x", "clster": "y"}])
def test_a_misspelt_keyword_is_a_field_error(kwargs):
    args = [] if "name" in kwargs else ["edge1"]
    fields = _fields(lambda: runner_args.bind(provision, "cluster.provision", args, kwargs))
    assert fields == [k for k in kwargs if k != "name"]


def test_a_missing_argument_names_it_and_the_usage():
    with pytest.raises(Refused) as caught:
        runner_args.bind(provision, "cluster.provision", [], {})
    (error,) = caught.value.errors
    assert error["field"] == "name"
    assert "salt-run cluster.provision NAME [wait=...] [timeout=...]" in error["message"]


def test_too_many_positional_arguments():
    assert _fields(lambda: runner_args.bind(provision, "cluster.provision",
                                            ["a", True, 5, "d"], {})) == ["arguments"]


def test_the_same_argument_twice():
    assert _fields(lambda: runner_args.bind(provision, "cluster.provision", ["a"],
                                            {"name": "b"})) == ["name"]


@pytest.mark.parametrize("value", ["maybe", "", 2, [True], None])
def test_booleans_are_strict(value):
    assert _fields(lambda: runner_args.bind(provision, "cluster.provision", ["a"],
                                            {"wait": value})) == ["wait"]


@pytest.mark.parametrize("value", ["yes", "TRUE", "1", True])
def test_boolean_spellings(value):
    values, _ = runner_args.bind(provision, "cluster.provision", ["a"], {"wait": value})
    assert values["wait"] is True


@pytest.mark.parametrize("value", [0, -5, "nan", "inf", 10 ** 9, "soon", True])
def test_timeouts_are_bounded_numbers(value):
    assert _fields(lambda: runner_args.bind(provision, "cluster.provision", ["a"],
                                            {"timeout": value})) == ["timeout"]


@pytest.mark.parametrize("value", [[1], {"a": 1}, "x" * 2000, "a\nb", "a\x00b", True])
def test_text_arguments_take_one_line_of_text(value):
    assert _fields(lambda: runner_args.bind(sync, "artifacts.sync", ["1.30"],
                                            {"source": value})) == ["source"]


def test_a_version_keeps_the_text_the_operator_typed():
    # salt-run YAML-parses `1.30` into the float 1.3; its command line still has the words
    raw = runner_args.raw_arguments({"fun": "artifacts.sync", "arg": ["1.30", "arch=amd64"]},
                                    "artifacts.sync")
    values, _ = runner_args.bind(sync, "artifacts.sync", [1.3], {"arch": "amd64"}, raw)
    assert values["version"] == "1.30"
    raw = runner_args.raw_arguments({"fun": "cluster.create",
                                     "arg": ["edge2", "k8s_version=1.30", "ha=True"]},
                                    "cluster.create")
    values, options = runner_args.bind(create, "cluster.create", ["edge2"],
                                       {"k8s_version": 1.3, "ha": True}, raw)
    assert options == {"k8s_version": "1.30", "ha": True}


def test_raw_words_belong_to_the_call_they_came_with():
    # An orchestration's runner call inherits opts from another command: never mix them up
    assert runner_args.raw_arguments({"fun": "state.orchestrate", "arg": ["x"]},
                                     "artifacts.sync") is None
    values, _ = runner_args.bind(sync, "artifacts.sync", [1.3], {}, None)
    assert values["version"] == "1.3"


def test_runners_with_options_receive_the_unnamed_keywords():
    values, options = runner_args.bind(create, "cluster.create", ["e"], {"bogus": 1})
    assert values == {"name": "e"} and options == {"bogus": 1}
