"""MkDocs hooks (mkdocs.yml `hooks:`): fill each `<!-- generated: NAME -->` marker with the
reference generated from the code (scripts/docs_reference.py) as the site builds."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # mkdocs loads this file by path

from scripts.docs_reference import GENERATED  # noqa: E402

MARKER = re.compile(r"<!-- generated: ([a-z]+) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """The page with its markers replaced; an unknown marker fails the build with its name."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATED:
            known = ", ".join(sorted(GENERATED))
            raise ValueError(f"{page.file.src_uri}: unknown marker 'generated: {name}'; use one of {known}")
        return GENERATED[name]()

    return MARKER.sub(fill, markdown)
