"""README stays true: its config reference is the one the models generate."""

from __future__ import annotations

from scripts.config_reference import render
from tests.conftest import REPO


def test_readme_config_reference_is_current() -> None:
    text = (REPO / "README.md").read_text()
    start, end = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    embedded = text.split(start, 1)[1].split(end, 1)[0]
    assert embedded == render(), "regenerate with: .venv/bin/python -m scripts.config_reference"


def test_readme_names_only_make_targets_that_exist() -> None:
    makefile = (REPO / "Makefile").read_text()
    for target in ("run", "test", "lint", "bench", "compile", "tools", "lock", "clean"):
        assert f"\n{target}:" in makefile or f"\n{target}: " in makefile, target
