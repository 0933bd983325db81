"""Distributed image training: a rank killed mid-epoch is restarted by torchrun, its DataLoader
workers end with it, and the run resumes from the last epoch's checkpoint to end exactly where
an uninterrupted run ends (shuffling, augmentation and dropout all replay)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from components.common.artifacts import DatasetSchema
from components.common.config import KubeloopConfig
from components.train.step import launch
from examples.digits_images.data import images
from examples.image_sets import write_image_set
from tests.torchrun_processes import (
    checkpoint_epoch,
    command_name,
    kill_leftovers,
    rank_processes,
    running,
    wait_for_epoch,
)

pytestmark = pytest.mark.integration
TRAIN, VALIDATION = 480, 160
"""Digits per split: 15 steps of 16 per rank and epoch, about a second on two CPU cores."""
DATASET = {
    "path": "digits.csv",
    "modality": "images",
    "label": "label",
    "image": {
        "size": [16, 16],
        "channels": 1,
        "fit": "stretch",
        "workers": 1,  # per rank: each rank reads through a DataLoader worker process
        "augment": {"horizontal_flip": True, "rotation_degrees": 10, "gamma": 0.2, "noise_std": 0.02},
    },
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """scikit-learn's digits as 16x16 PNGs, labelled odd or even, in two parquet splits."""
    folder = tmp_path_factory.mktemp("ddp_images")
    pixels, digits = images(size=16)
    rows = TRAIN + VALIDATION
    frame = pd.DataFrame({"label": (digits[:rows] % 2).astype(int)})
    manifest = write_image_set(
        folder / "digits.csv", frame, list(pixels[:rows]), [f"{i}.png" for i in range(rows)]
    )
    config = KubeloopConfig.model_validate({"name": "ddp-images", "dataset": DATASET})
    read = config.dataset.make_modality().read(manifest)  # image paths resolved beside the manifest
    read.iloc[:TRAIN].to_parquet(folder / "train.parquet", index=False)
    read.iloc[TRAIN:].to_parquet(folder / "validation.parquet", index=False)
    schema = DatasetSchema(
        features=["image"],
        categorical=[],
        label="label",
        positive_value=1,
        modality="images",
        modality_settings=config.dataset.modality_settings(),
    )
    return {
        "schema": schema.to_dict(),
        "train": str(folder / "train.parquet"),
        "validation": str(folder / "validation.parquet"),
        "config_json": KubeloopConfig.model_validate(
            {
                "name": "ddp-images",
                "dataset": DATASET,
                "training": {
                    "epochs": 5,
                    "batch_size": 16,
                    "learning_rate": 0.001,
                    "dropout": 0.2,  # the model's own draws, restored from the checkpoint
                    "early_stopping_patience": 10,
                    "seed": 11,
                    "device": "cpu",
                },
            }
        ).to_json(),
    }


def test_a_killed_image_rank_and_its_loader_workers_resume_to_the_uninterrupted_result(
    data: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "straight").mkdir()
    straight = launch(data, tmp_path / "straight", nproc=2, max_restarts=0)
    capfd.readouterr()

    workdir = tmp_path / "faulty"
    workdir.mkdir()
    spec_path = workdir / "spec.json"
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = launch(data, workdir, nproc=2, max_restarts=1)
        except RuntimeError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    checkpoint, deadline = workdir / "checkpoint.pt", time.monotonic() + 150
    try:
        wait_for_epoch(checkpoint, 2, deadline)
        # At once: rank 1 is in epoch 3's first steps, its workers prefetching. Half an epoch
        # later (the first version) was past the epoch's end in 1 of 4 runs on a loaded machine.
        rank, below = rank_processes(spec_path, rank=1)
        assert rank is not None, "rank 1 not found"
        # Its DataLoader workers name themselves; they run under its forkserver.
        assert any(command_name(pid) == "pt_data_worker" for pid in below), "rank 1 has no loader workers"
        os.kill(rank, signal.SIGKILL)
        assert checkpoint_epoch(checkpoint) in (2, 3), "rank 1 died after the run's last epochs"
        thread.join(timeout=max(1.0, deadline - time.monotonic()))
        assert not thread.is_alive(), "the restarted run did not finish in time"
        orphans = [pid for pid in below if running(pid)]
        assert not orphans, f"the loader processes {orphans} outlived their killed rank"
    finally:
        kill_leftovers(spec_path)
    assert "result" in outcome, outcome

    printed = capfd.readouterr().out
    # Rank 1 died in epoch 3; rank 0 may still write that epoch's checkpoint when rank 1 had
    # passed the epoch's last collective (seen under load): either is a resume mid-run.
    resumed_after = re.findall(r"resumed from checkpoint\.pt after epoch (\d+)", printed)
    assert resumed_after in (["2"], ["3"]), printed[-4000:]
    resumed = outcome["result"]
    assert [int(h["epoch"]) for h in resumed["history"]] == [1, 2, 3, 4, 5]
    for ours, theirs in zip(resumed["history"], straight["history"], strict=True):
        for key in ("train_loss", "val_loss", "lr"):
            assert ours[key] == theirs[key], (int(ours["epoch"]), key, ours[key], theirs[key])
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    moved = np.ptp([h["val_loss"] for h in straight["history"]])
    assert moved > 1e-3  # the runs agree on real training, not on a model that never moved
