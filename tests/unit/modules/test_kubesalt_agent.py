"""kubesalt_agent.tail, loaded from its file as Salt's loader ships it to a minion: the last
lines of a log, bounded in lines and bytes, never a partial first line, never failing on
bytes that are not UTF-8."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location(
    "kubesalt_agent", ROOT / "modules" / "_modules" / "kubesalt_agent.py")
agent = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(agent)


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "minion"
    path.write_text("".join(f"line {i}\n" for i in range(1, 5001)))
    return path


def test_the_last_lines(log):
    got = agent.tail(log, 3)
    assert got == {"lines": 3, "truncated": True, "log": "line 4998\nline 4999\nline 5000\n"}


def test_a_short_file_whole(tmp_path):
    path = tmp_path / "minion"
    path.write_text("one\ntwo")
    assert agent.tail(path, 200) == {"lines": 2, "truncated": False, "log": "one\ntwo"}
    path.write_text("")
    assert agent.tail(path, 200) == {"lines": 0, "truncated": False, "log": ""}


def test_lines_are_capped(log):
    got = agent.tail(log, 10 ** 6)
    assert got["lines"] == agent.MAX_LINES
    assert got["log"].startswith(f"line {5001 - agent.MAX_LINES}\n")


def test_bytes_are_capped_without_a_partial_first_line(tmp_path):
    path = tmp_path / "minion"
    path.write_text("".join(f"{i:05d} " + "x" * 994 + "\n" for i in range(200)))  # 1 KB lines
    got = agent.tail(path, 1000, max_bytes=10_500)
    assert got["truncated"] is True
    assert len(got["log"].encode()) <= 10_500
    assert got["lines"] == 10
    assert got["log"].startswith("00190 ")  # whole lines only
    assert agent.tail(path, 1000, max_bytes=10 ** 9)["log"].encode().__len__() \
        <= agent.MAX_BYTES


def test_one_line_longer_than_the_budget_keeps_its_end(tmp_path):
    path = tmp_path / "minion"
    path.write_text("y" * 100_000 + "\n")
    got = agent.tail(path, 5, max_bytes=1000)
    assert got == {"lines": 1, "truncated": True, "log": "y" * 999 + "\n"}


def test_bytes_that_are_not_utf8_are_replaced(tmp_path):
    path = tmp_path / "minion"
    path.write_bytes(b"ok\n\xff\xfe bad\n")
    assert agent.tail(path, 5)["log"] == "ok\n\ufffd\ufffd bad\n"


def test_log_tail_reads_the_minions_own_log(log, monkeypatch):
    monkeypatch.setattr(agent, "__opts__", {"log_file": str(log)}, raising=False)
    got = agent.log_tail(lines=2)
    assert got["path"] == str(log) and got["log"] == "line 4999\nline 5000\n"
    monkeypatch.setattr(agent, "__opts__", {"log_file": "udp://loghost:514"}, raising=False)
    assert "no log file" in agent.log_tail()["error"]
    monkeypatch.setattr(agent, "__opts__", {"log_file": str(log) + ".missing"}, raising=False)
    assert "no log file" in agent.log_tail()["error"]
