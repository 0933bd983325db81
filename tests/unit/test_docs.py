"""The documentation site builds with --strict (no broken link, anchor or page left out of the
nav), and its reference pages are generated from the code: every command, config key, CRD
field and metric is there."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import build_parser
from components.common.tasks import binary, metric_definitions, multiclass_metrics
from operators.crds import all_crds
from scripts.config_reference import render
from scripts.docs_reference import subcommands
from tests.conftest import REPO


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def text_of(site: Path, page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", (site / page / "index.html").read_text()))


def test_the_cli_page_has_every_command_and_the_exit_codes(site: Path) -> None:
    page = text_of(site, "reference/cli")
    commands = subcommands(build_parser())
    assert len(commands) >= 15
    for name in commands:
        assert f"usage: kubeloop {name}" in page, name
    assert "Exit codes" in page


def test_the_config_page_has_every_key(site: Path) -> None:
    page = text_of(site, "reference/config")
    keys = re.findall(r"^\| `([^`]+)` \|", render(), flags=re.MULTILINE)
    assert len(keys) > 100
    missing = [key for key in keys if key not in page]
    assert not missing, missing


def test_the_crd_page_has_every_kind_and_spec_field(site: Path) -> None:
    page = text_of(site, "reference/crds")
    for crd in all_crds():
        assert crd["spec"]["names"]["kind"] in page
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for field in schema["properties"].get("spec", {}).get("properties", {}):
            assert f"spec.{field}" in page, (crd["spec"]["names"]["kind"], field)
    assert "models/<model>/" in page  # written as text, not swallowed as a tag


def test_every_reported_metric_is_defined_on_the_metrics_page(site: Path) -> None:
    page = text_of(site, "reference/metrics")
    assert set(binary.METRICS) <= set(metric_definitions.BINARY)
    assert set(multiclass_metrics.SUMMARY_METRICS) <= set(metric_definitions.MULTICLASS)
    assert set(multiclass_metrics.PER_CLASS_METRICS) <= set(metric_definitions.PER_CLASS)
    for name in [*binary.METRICS, *multiclass_metrics.SUMMARY_METRICS, "kubeloop_predict_seconds"]:
        assert name in page, name


def test_the_readme_is_short_and_its_pictures_exist() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for picture in re.findall(r"\]\(([^)]+\.png)\)", readme):
        assert (REPO / picture).is_file(), picture


def test_the_benchmarks_page_lists_every_benchmark(site: Path) -> None:
    page = text_of(site, "operations/benchmarks")
    scripts = sorted((REPO / "tests" / "benchmarks").glob("bench_*.py"))
    assert len(scripts) >= 10
    for script in scripts:
        name = script.stem.removeprefix("bench_").replace("_", "-")
        assert f"make bench-{name}" in page, name
