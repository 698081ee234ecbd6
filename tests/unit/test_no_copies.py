"""No block of code is copied: more than WINDOW lines repeated across the controller, its
runners, states, pillar, modules and the lab (tests/labkit) fail, naming both places.

Two passes over the tracked sources (.py, .sls, .jinja, .j2, and suffix-less files with a
python shebang such as the lab stand-ins; data files and tests/labkit/manifests are not code).
Lines are stripped, and blank lines, `#` comments and one-line `{# ... #}` comments dropped.
The exact pass compares those lines; the shape pass also writes every `{{ ... }}` as E, string
literal as S, number as 0 and identifier that is not a Python or Jinja keyword as I, so a copy
with renamed variables or other values is found too. Shared code goes in one place that both
users load: a Jinja macro, a Python function, tests/labkit/bin/standin_common.py.
"""

import keyword
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIRECTORIES = ("master", "runners", "states", "pillar", "modules", "tests/labkit")
SKIPPED = ("tests/labkit/manifests/",)
SUFFIXES = {".py", ".sls", ".jinja", ".j2"}
WINDOW = 21  # a block of more than 20 lines

JINJA_COMMENT = re.compile(r"^\{#.*#\}$")
KEYWORDS = set(keyword.kwlist) | set(keyword.softkwlist) | {
    "endif", "endfor", "set", "endset", "macro", "endmacro", "call", "endcall", "include",
    "extends", "block", "endblock", "filter", "endfilter", "raw", "endraw", "do", "without",
    "context", "ignore", "missing", "recursive", "true", "false", "none"}
TOKEN = re.compile(r"""
    (?P<expression>\{\{.*?\}\})
  | (?P<string>\b[rRbBfFuU]{0,2}(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9][0-9A-Za-z_]*(?:\.[0-9A-Za-z_]*)?)
""", re.X)


def _shape(match):
    kind = match.lastgroup
    if kind == "name":
        return match.group() if match.group() in KEYWORDS else "I"
    return {"expression": "E", "string": "S", "number": "0"}[kind]


def sources():
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", *DIRECTORIES], cwd=ROOT,
                                capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the sources are the files git tracks")
    for name in sorted(filter(None, listed.split("\0"))):
        path = ROOT / name
        if name.startswith(SKIPPED) or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix in SUFFIXES or (
                not path.suffix and re.match(r"#!.*python", text.partition("\n")[0])):
            yield name, text


def normalised():
    """{file: [(line number, line)]} of the lines that count."""
    files = {}
    for name, text in sources():
        lines = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line and not line.startswith("#") and not JINJA_COMMENT.match(line):
                lines.append((number, line))
        files[name] = lines
    return files


def copies(files):
    """Each block of at least WINDOW lines that occurs twice, once, as
    'a:first-last and b:first-last (N lines)'."""
    seen, pairs = {}, defaultdict(set)
    for name, lines in files.items():
        texts = [line for _, line in lines]
        for index in range(len(texts) - WINDOW + 1):
            window = tuple(texts[index:index + WINDOW])
            first = seen.setdefault(window, (name, index))
            if first != (name, index) and (first[0] != name or index - first[1] >= WINDOW):
                pairs[(first[0], name, index - first[1])].add(first[1])
    found = []
    for (first, other, offset), starts in sorted(pairs.items()):
        run = []
        for start in sorted(starts) + [None]:
            if run and start == run[-1] + 1:
                run.append(start)
                continue
            if run:
                begin, end = run[0], run[-1] + WINDOW - 1
                found.append(f"{first}:{files[first][begin][0]}-{files[first][end][0]} and "
                             f"{other}:{files[other][begin + offset][0]}-"
                             f"{files[other][end + offset][0]} ({end - begin + 1} lines)")
            run = [start]
    return found


def test_no_block_is_copied():
    found = copies(normalised())
    assert not found, ("copied blocks (put them in one place both load):\n  "
                       + "\n  ".join(found))


def test_no_block_is_copied_with_other_names_or_values():
    files = {name: [(number, TOKEN.sub(_shape, line)) for number, line in lines]
             for name, lines in normalised().items()}
    found = copies(files)
    assert not found, ("blocks copied with other names or values (put them in one place "
                       "both load):\n  " + "\n  ".join(found))
