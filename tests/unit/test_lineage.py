"""Lineage: code version, resolved config and hash, data fingerprint, packages, trigger."""

from __future__ import annotations

import subprocess
from pathlib import Path

from components.common.config_loader import load_config
from components.common.lineage import build_lineage, fingerprint_file, git_info
from tests.conftest import REPO


def test_fingerprint_is_a_content_hash(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x\n1\n")
    b.write_text("x\n1\n")
    assert fingerprint_file(a) == fingerprint_file(b)
    b.write_text("x\n2\n")
    assert fingerprint_file(a) != fingerprint_file(b)


def test_git_info_matches_the_repository() -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    info = git_info(REPO)
    assert info["source"] == "git"
    assert info["commit"] == head.stdout.strip()
    assert isinstance(info["dirty"], bool)


def test_git_info_falls_back_to_image_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KUBELOOP_GIT_COMMIT", "abc123")
    info = git_info(tmp_path)
    assert info["commit"] == "abc123" and info["source"] == "environment"


def test_lineage_record_has_every_field() -> None:
    config = load_config(REPO / "examples/breast_cancer/config.yaml")
    record = build_lineage(config, "run-1", "sha256:feed", parent_run="run-0", trigger="drift")
    assert record["run_id"] == "run-1" and record["parent_run"] == "run-0"
    assert record["trigger"] == "drift"
    assert record["config"] == config.resolved()
    assert record["config_hash"] == f"sha256:{config.digest()}"
    assert record["data"]["fingerprint"] == "sha256:feed"
    assert {"python", "torch", "kfp", "pandas"} <= set(record["packages"])
    assert {"commit", "dirty", "diff"} <= set(record["git"])
