"""Crash-test first: a short run on a small stratified subset that must show learning.

Hours on GPUs are wasted when the labels are misaligned, the features are garbage or the
learning rate is off by orders of magnitude. The smoke test trains for a few epochs on a few
thousand rows, in the step's own process, and fails the step within seconds unless the
training loss falls and the validation loss improves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch

from components.common.artifacts import DatasetSchema
from components.common.config import TrainingConfig
from components.common.step import GateFailed
from components.common.tasks import Task
from components.train import recipe

MIN_RELATIVE_DECREASE = 0.01
"""The training loss must fall by at least this share of its starting value."""


class SmokeTestFailed(GateFailed):
    """The model did not learn on the smoke subset; the message says what to check."""


def stratified_subset(frame: pd.DataFrame, y: np.ndarray, rows: int, seed: int) -> pd.DataFrame:
    """About `rows` rows with the label shares of `frame` (at least a few of each class)."""
    if len(frame) <= rows:
        return frame
    rng = np.random.default_rng(seed)
    picked = []
    for value in np.unique(y):
        index = np.flatnonzero(y == value)
        take = min(len(index), max(8, round(rows * len(index) / len(frame))))
        picked.append(rng.choice(index, size=take, replace=False))
    return frame.iloc[np.sort(np.concatenate(picked))]


def run_smoke_test(
    cfg: TrainingConfig,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    schema: DatasetSchema,
    log: Callable[[str], Any] = print,
) -> dict[str, float]:
    """Train briefly on a subset; returns the before/after losses or raises SmokeTestFailed."""
    started = time.monotonic()
    task: Task = schema.make_task()
    modality = schema.make_modality()
    train = stratified_subset(train, task.frame_targets(train), cfg.smoke_test_rows, cfg.seed)
    validation = stratified_subset(
        validation, task.frame_targets(validation), cfg.smoke_test_rows // 2, cfg.seed
    )
    inputs = modality.fit_inputs(train, schema, cfg)
    targets_train, targets_val = task.frame_targets(train), task.frame_targets(validation)
    yt = task.loss_targets(targets_train)
    smoke = cfg.model_copy(
        update={
            "epochs": cfg.smoke_test_epochs,
            "early_stopping_patience": cfg.smoke_test_epochs + 1,
            "batch_size": max(1, min(cfg.batch_size, len(train) // 8)),  # at least 8 steps an epoch
            "device": "cpu",  # seconds on a CPU; the GPUs stay free for the real run
        }
    )
    data = modality.training_batches(inputs, (train, validation), (yt, task.loss_targets(targets_val)), smoke)
    loss_fn = task.loss(yt, smoke.class_weighting, torch.device("cpu"))
    built = recipe.setup(smoke, modality.model_spec(inputs, task), data, task, log=lambda _: None)
    built.model.eval()

    def losses(model: torch.nn.Module) -> tuple[float, float]:
        train_loss = recipe.split_loss(model, loss_fn, data, "train")
        return train_loss, recipe.split_loss(model, loss_fn, data, "validation")

    before = losses(built.model)
    log(
        f"smoke test: {smoke.smoke_test_epochs} epochs on {len(train):,} train / {len(validation):,} "
        f"validation rows ({task.describe(targets_train)} / {task.describe(targets_val)}), "
        f"batch {smoke.batch_size}"
    )
    trained, _ = recipe.train(smoke, built, log=lambda _: None)
    after = losses(trained)
    result = {
        "smoke_train_loss_before": round(before[0], 5),
        "smoke_train_loss_after": round(after[0], 5),
        "smoke_val_loss_before": round(before[1], 5),
        "smoke_val_loss_after": round(after[1], 5),
        "smoke_seconds": round(time.monotonic() - started, 2),
    }
    where = f"over {smoke.smoke_test_epochs} epochs on a {len(train):,}-row stratified subset"
    skip = "training.smoke_test=false skips this check"
    if not all(math.isfinite(v) for v in (*before, *after)):
        raise SmokeTestFailed(
            f"smoke test: the loss is not finite (train {before[0]} -> {after[0]}) {where}. "
            "Look for NaN or infinite feature values that got past the data gate, or lower "
            f"training.learning_rate ({cfg.learning_rate}); {skip}"
        )
    if after[0] > before[0] * (1 - MIN_RELATIVE_DECREASE):
        raise SmokeTestFailed(
            f"smoke test: the training loss did not decrease ({before[0]:.4f} -> {after[0]:.4f}) {where}. "
            f"The model is not learning: check training.learning_rate ({cfg.learning_rate}), "
            f"the label column '{schema.label}' and the feature encoding; {skip}"
        )
    baseline = task.prior_loss(targets_train, targets_val, cfg.class_weighting)
    result["smoke_val_loss_constant"] = round(baseline, 5)
    if after[1] >= min(before[1], baseline):
        raise SmokeTestFailed(
            f"smoke test: the training loss fell ({before[0]:.4f} -> {after[0]:.4f}) but the validation "
            f"loss ({before[1]:.4f} -> {after[1]:.4f}) does not beat both its starting value and "
            f"predicting the base rate ({baseline:.4f}) {where}. What the model learns "
            "does not carry over to held-out rows: check that labels line up with their rows, that "
            f"the splits come from the same population, and training.dropout/weight_decay; {skip}"
        )
    log(
        f"smoke test passed in {result['smoke_seconds']:.1f} s: train loss {before[0]:.4f} -> {after[0]:.4f},"
        f" validation loss {before[1]:.4f} -> {after[1]:.4f} (base rate alone: {baseline:.4f})"
    )
    return result
