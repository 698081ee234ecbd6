"""docs/ARCHITECTURE.md names files and folders a newcomer will open: each must exist, so a
move that forgets the page fails here instead of misleading the next reader."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Paths on the page are written from the repository, from master/ or from states/.
BASES = (ROOT, ROOT / "master", ROOT / "states")


def test_every_path_the_architecture_page_names_exists():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    paths = {token.split(" ")[0] for token in re.findall(r"`([^`]+)`", text)
             if "/" in token.split(" ")[0] and "<" not in token}
    assert paths, "the page names no paths"
    missing = sorted(p for p in paths if not any((base / p).exists() for base in BASES))
    assert not missing, f"docs/ARCHITECTURE.md names paths that do not exist: {missing}"
