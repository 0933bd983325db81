"""README stays true: the make targets it names exist."""

from __future__ import annotations

import re

from tests.conftest import REPO


def test_readme_names_only_make_targets_that_exist() -> None:
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    named = set(re.findall(r"`make ([a-z-]+)`", readme))
    assert {"run", "test", "docs", "lint"} <= named
    missing = [t for t in named if not re.search(rf"^{re.escape(t)}:", makefile, flags=re.MULTILINE)]
    assert not missing, missing
