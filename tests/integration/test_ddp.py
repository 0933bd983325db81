"""Distributed training: DDP over gloo processes equals one process with the global batch, and
a run resumed from its checkpoint equals an uninterrupted one."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from components.common.config import KubeloopConfig, TrainingConfig
from components.common.preprocessing import Preprocessing
from components.common.tasks import BinaryTask
from components.train.step import launch
from examples.screening.generate import generate
from tests.conftest import REPO
from tests.specs import fit, tabular_spec
from tests.torchrun_processes import checkpoint_epoch, kill_leftovers, rank_processes, wait_for_epoch

pytestmark = pytest.mark.integration
FEATURES = ["age", "breast_density", "lesion_size_mm", "margin_irregularity", "intensity_mean", "scanner"]
SCHEMA = {"features": FEATURES, "categorical": ["scanner"], "label": "label", "positive_value": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("ddp")
    frame = generate(rows=2400, prevalence=0.1, scanners={"A": 0.5, "B": 0.5}, seed=5)
    frame.iloc[:2000].to_parquet(folder / "train.parquet", index=False)  # 2000 = 20 steps of 100
    frame.iloc[2000:].to_parquet(folder / "validation.parquet", index=False)
    return {"train": str(folder / "train.parquet"), "validation": str(folder / "validation.parquet")}


def _config(**training: Any) -> str:
    return KubeloopConfig.model_validate(
        {
            "name": "ddp",
            "dataset": {"path": "unused.csv", "label": "label", "categorical": ["scanner"]},
            "training": {"hidden_sizes": [16, 8], "dropout": 0.0, "seed": 3, "device": "cpu", **training},
        }
    ).to_json()


def test_two_gloo_processes_equal_one_process_with_the_global_batch(
    data: dict[str, str], tmp_path: Path
) -> None:
    common = {"epochs": 1, "lr_scaling": "none", "learning_rate": 0.01}
    spec = {"schema": SCHEMA, **data, "max_steps": 10}
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    two = launch(
        {**spec, "config_json": _config(batch_size=50, **common)}, tmp_path / "two", nproc=2, max_restarts=0
    )
    one = launch(
        {**spec, "config_json": _config(batch_size=100, **common)}, tmp_path / "one", nproc=1, max_restarts=0
    )
    assert two["world_size"] == 2 and one["world_size"] == 1
    gaps = {k: float((two["state_dict"][k] - one["state_dict"][k]).abs().max()) for k in one["state_dict"]}
    assert max(gaps.values()) <= 1e-5, gaps
    (tmp_path / "init").mkdir()
    initial = launch(
        {**spec, "max_steps": 0, "config_json": _config(batch_size=100, **common)},
        tmp_path / "init",
        nproc=1,
        max_restarts=0,
    )
    moved = max(float((one["state_dict"][k] - initial["state_dict"][k]).abs().max()) for k in gaps)
    assert moved > 1e-3  # ten steps changed the weights: the two runs agree on real training


def _arrays(paths: dict[str, str]) -> tuple[Preprocessing, list[np.ndarray]]:
    import pandas as pd

    frames = {k: pd.read_parquet(v) for k, v in paths.items()}
    prep = Preprocessing.fit(frames["train"], FEATURES, ["scanner"])
    arrays = [
        prep.encode(frames["train"]),
        frames["train"]["label"].to_numpy(np.float32),
        prep.encode(frames["validation"]),
        frames["validation"]["label"].to_numpy(np.float32),
    ]
    return prep, arrays


def test_resuming_from_the_checkpoint_equals_an_uninterrupted_run(
    data: dict[str, str], tmp_path: Path
) -> None:
    prep, (xt, yt, xv, yv) = _arrays(data)
    cfg = TrainingConfig(hidden_sizes=[16, 8], dropout=0.2, epochs=3, early_stopping_patience=10, seed=4)
    straight, straight_history = fit(
        cfg, xt, yt, xv, yv, tabular_spec(prep), task=BinaryTask("label", 1), log=lambda _: None
    )
    checkpoint = tmp_path / "checkpoint.pt"
    fit(
        cfg.model_copy(update={"epochs": 2}),
        xt,
        yt,
        xv,
        yv,
        tabular_spec(prep),
        task=BinaryTask("label", 1),
        log=lambda _: None,
        checkpoint=checkpoint,
    )
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 2
    lines: list[str] = []
    resumed, history = fit(
        cfg,
        xt,
        yt,
        xv,
        yv,
        tabular_spec(prep),
        task=BinaryTask("label", 1),
        log=lines.append,
        checkpoint=checkpoint,
    )
    assert lines[0] == "resumed from checkpoint.pt after epoch 2"
    assert [h["epoch"] for h in history] == [1.0, 2.0, 3.0]
    assert history[-1]["val_loss"] == pytest.approx(straight_history[-1]["val_loss"], abs=1e-6)
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key


@pytest.mark.parametrize("model", ["built-in", "own"])
def test_a_killed_rank_is_restarted_and_resumes_from_the_checkpoint(
    data: dict[str, str], tmp_path: Path, capfd: pytest.CaptureFixture[str], model: str
) -> None:
    own: dict[str, Any] = {}
    if model == "own":  # a factory in a folder outside the repository, as a team keeps its code
        team = tmp_path / "team"
        team.mkdir()
        shutil.copy(REPO / "examples" / "own_model" / "model.py", team / "team_model.py")
        own = {
            "model": {"factory": "team_model:residual_mlp", "params": {"width": 16}},
            "code_path": str(team),
        }
    config = _config(epochs=6, batch_size=8, early_stopping_patience=10, dropout=0.1, **own)
    spec = {"schema": SCHEMA, **data, "config_json": config}
    (tmp_path / "straight").mkdir()
    straight = launch(spec, tmp_path / "straight", nproc=2, max_restarts=0)

    workdir = tmp_path / "faulty"
    workdir.mkdir()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = launch(spec, workdir, nproc=2, max_restarts=1)
        except RuntimeError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    checkpoint, deadline = workdir / "checkpoint.pt", time.monotonic() + 240
    try:
        first = wait_for_epoch(checkpoint, 1, deadline)
        second = wait_for_epoch(checkpoint, 2, deadline)
        time.sleep((second - first) / 2)  # halfway through epoch 3
        pid, _ = rank_processes(workdir / "spec.json", rank=1)
        assert pid is not None, "rank 1 not found"
        os.kill(pid, signal.SIGKILL)
        assert checkpoint_epoch(checkpoint) == 2, "rank 1 died after epoch 3 ended, not in the middle of it"
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
        assert not thread.is_alive(), "the restarted run did not finish in time"
    finally:  # a failed or hung run leaves no processes behind
        kill_leftovers(workdir / "spec.json")
    assert "result" in outcome, outcome

    log = capfd.readouterr().out
    assert "resumed from checkpoint.pt after epoch 2" in log
    history = outcome["result"]["history"]
    assert [int(h["epoch"]) for h in history] == [1, 2, 3, 4, 5, 6]
    best = min(h["val_loss"] for h in history)
    straight_best = min(h["val_loss"] for h in straight["history"])
    assert best == pytest.approx(straight_best, rel=0.01)
    if model == "own":  # the result names the user's network, and it is what was trained
        assert any(k.startswith("blocks.") for k in outcome["result"]["state_dict"])


def test_the_pytorchjob_entry_point_trains_from_the_store_and_resumes_from_its_checkpoint(
    data: dict[str, str], s3_env: dict[str, str]
) -> None:
    """What each PyTorchJob pod runs, here as one 2-process node against the S3 server."""
    import subprocess
    import sys
    import uuid

    from components.common.s3store import S3Store

    env = {**os.environ, **s3_env}
    uri = f"s3://kubeloop-test/{uuid.uuid4().hex}"
    store = S3Store.from_uri(uri)
    store.upload_file("splits/train.parquet", data["train"])
    store.upload_file("splits/validation.parquet", data["validation"])
    spec = {
        "schema": SCHEMA,
        "train_key": "splits/train.parquet",
        "validation_key": "splits/validation.parquet",
        "checkpoint_key": "train/job/checkpoint.pt",
        "result_key": "train/job/result.pt",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "components.train.job",
        uri,
        "train/job/spec.json",
    ]

    def run(epochs: int) -> str:
        store.write_json("train/job/spec.json", {**spec, "config_json": _config(epochs=epochs)})
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    first = run(epochs=2)
    assert "epoch   2/2" in first and "resumed" not in first
    with store.local_copy("train/job/checkpoint.pt") as path:
        assert torch.load(path, weights_only=False)["epoch"] == 2
    # A pod restarted anywhere finds the checkpoint in the store and goes on from it.
    second = run(epochs=3)
    assert "resumed from checkpoint.pt after epoch 2" in second and "epoch   3/3" in second
    with store.local_copy("train/job/result.pt") as path:
        result = torch.load(path, weights_only=False)
    assert result["world_size"] == 2 and [int(h["epoch"]) for h in result["history"]] == [1, 2, 3]
