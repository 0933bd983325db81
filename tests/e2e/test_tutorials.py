"""The tutorials stay true: every shell block marked `<!-- runnable -->` in docs/tutorials/ runs,
in order, in a fresh folder that sees the clone's examples, manifests, chart and environments
(as a user in the clone's root sees them), and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

TUTORIALS = REPO / "docs" / "tutorials"
RUNNABLE = re.compile(r"<!-- runnable -->\n```bash\n(.*?)\n```", re.DOTALL)
SHARED = ("examples", "manifests", "helm", ".venv", ".venv-serving", ".tools")
"""What the blocks may use from the clone, linked into the folder they run in."""


def runnable_blocks(page: Path) -> list[str]:
    return RUNNABLE.findall(page.read_text())


def test_the_marker_finds_blocks() -> None:
    counts = {page.name: len(runnable_blocks(page)) for page in sorted(TUTORIALS.glob("*.md"))}
    assert counts["your-own-table.md"] == 4 and counts["going-to-a-cluster.md"] == 3, counts


@pytest.mark.parametrize(
    "page", sorted(p.name for p in TUTORIALS.glob("*.md") if runnable_blocks(p)), ids=lambda name: name
)
def test_the_runnable_blocks_of_a_tutorial_run(page: str, tmp_path: Path) -> None:
    for name in SHARED:
        (tmp_path / name).symlink_to(REPO / name)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for number, block in enumerate(runnable_blocks(TUTORIALS / page), start=1):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        said = (done.stdout + done.stderr)[-4000:]
        where = f"{page}, runnable block {number} exited {done.returncode}"
        assert done.returncode == 0, f"{where}:\n{block}\n{said}"
