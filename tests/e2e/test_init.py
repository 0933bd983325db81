"""As a new user would: `kubeloop init --data my.csv --label y`, then `kubeloop run` on what it
wrote, with no hand edits, registers a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.common.registry import Registry
from components.common.store import LocalStore
from tests.e2e.test_training_pipeline import kubeloop
from tests.messy_table import write_messy_table

pytestmark = pytest.mark.e2e


def test_init_then_run_registers_a_model_on_a_messy_csv(tmp_path: Path) -> None:
    write_messy_table(tmp_path / "my.csv")
    done = kubeloop(["init", "--data", "my.csv", "--label", "y"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kubeloop run --config config.yaml" in done.stdout
    run = kubeloop(["run", "--config", "config.yaml", "--store", "store"], tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    registry = Registry(LocalStore(tmp_path / "store"))
    assert registry.versions("my")  # named after the file
    metrics = LocalStore(tmp_path / "store").read_json("models/my/1/metrics.json")
    assert metrics["roc_auc"] > 0.65  # the columns predict the label; the inferred roles kept them
