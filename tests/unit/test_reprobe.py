"""Approved nodes that answer but have no probed facts are probed again
(master/health/reprobe.py), leaving a node's first probe time to finish."""

from kubesalt.master.health.reprobe import Reprobe


def test_an_unprobed_node_is_probed_again_after_the_wait_and_then_each_wait():
    reprobe, probed = Reprobe(retry_every=100), set()
    assert reprobe.due(["a", "b"], probed.__contains__, now=0) == []
    probed.add("b")  # its first probe (on its minion's start) finished in time
    assert reprobe.due(["a", "b"], probed.__contains__, now=99) == []
    assert reprobe.due(["a", "b"], probed.__contains__, now=100) == ["a"]
    assert reprobe.due(["a", "b"], probed.__contains__, now=150) == []
    assert reprobe.due(["a", "b"], probed.__contains__, now=200) == ["a"]
    probed.add("a")
    assert reprobe.due(["a", "b"], probed.__contains__, now=400) == []


def test_a_node_that_stops_answering_starts_its_wait_again():
    reprobe = Reprobe(retry_every=100)
    assert reprobe.due(["a"], lambda _: False, now=0) == []
    assert reprobe.due([], lambda _: False, now=50) == []  # silent: its restart probes it
    assert reprobe.due(["a"], lambda _: False, now=120) == []
    assert reprobe.due(["a"], lambda _: False, now=220) == ["a"]
