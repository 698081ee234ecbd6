"""Every file the README links to (documents, screenshots) is in the repository."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_relative_link_of_the_readme_exists():
    text = (ROOT / "README.md").read_text()
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)
               if "://" not in t and not t.startswith("#")}
    assert any(t.startswith("docs/console/") for t in targets), "no screenshots linked"
    missing = sorted(t for t in targets if not (ROOT / t).exists())
    assert not missing, f"README.md links to files that do not exist: {missing}"
