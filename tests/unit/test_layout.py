"""Data flows downward (DESIGN.md, Layout): every import of every module is checked against the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FORBIDDEN = {
    "operators": {"cli", "loop", "pipelines"},
    "components": {"cli", "loop", "pipelines", "operators"},
    "pipelines": {"cli", "loop", "operators"},
    "loop": {"cli", "operators"},
}
"""What each top-level package must not import: cli and loop call pipelines and components,
operators call components, components use common; never the reverse."""
STEPS = sorted(
    p.name for p in (REPO / "components").iterdir() if (p / "__init__.py").exists() and p.name != "common"
)


def imported(source: str) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in `source`, function-level imports included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violations(root: Path, package: str, forbidden: set[str]) -> list[str]:
    """`path:line: module` for each import under `root/package` whose top-level name is forbidden."""
    offenders = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imported(path.read_text()):
            if module.split(".")[0] in forbidden:
                offenders.append(f"{path.relative_to(root).as_posix()}:{line}: {module}")
    return offenders


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_a_layer_above_it(package: str) -> None:
    offenders = violations(REPO, package, FORBIDDEN[package])
    assert not offenders, f"{package} must not import {sorted(FORBIDDEN[package])}:\n" + "\n".join(offenders)


def test_components_common_imports_no_step() -> None:
    steps = {f"components.{step}" for step in STEPS}
    offenders = [
        f"{path.relative_to(REPO).as_posix()}:{line}: {module}"
        for path in sorted((REPO / "components" / "common").rglob("*.py"))
        for line, module in imported(path.read_text())
        if ".".join(module.split(".")[:2]) in steps
    ]
    assert STEPS, "no step folders found under components/"
    assert not offenders, "the steps use components/common, never the reverse:\n" + "\n".join(offenders)


def test_the_cli_entry_point_and_its_packages_are_the_ones_shipped() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["kubeloop"] == "cli.main:main"
    shipped = project["tool"]["setuptools"]["packages"]["find"]["include"]
    checked = project["tool"]["mypy"]["files"]
    for package in ("cli", "loop", *FORBIDDEN):
        assert (REPO / package / "__init__.py").exists(), package
        assert f"{package}*" in shipped and package in checked, package


def test_the_detector_finds_a_forbidden_import_wherever_it_is(tmp_path: Path) -> None:
    planted = tmp_path / "operators" / "handlers.py"
    planted.parent.mkdir()
    planted.write_text(
        "import json\nfrom components.common.store import Store\n\n\n"
        "def handle() -> None:\n    from cli.common import new_console\n    import loop.engine\n"
    )
    assert violations(tmp_path, "operators", FORBIDDEN["operators"]) == [
        "operators/handlers.py:6: cli.common",
        "operators/handlers.py:7: loop.engine",
    ]
    assert violations(tmp_path, "operators", {"pipelines"}) == []
