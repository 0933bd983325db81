"""Model specs and a one-call recipe for tests that train tabular models without the train step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from components.common.config import TrainingConfig
from components.common.modalities import TabularModality
from components.common.modalities.batches import ArrayBatches
from components.common.model_spec import ModelSpec
from components.common.preprocessing import Preprocessing
from components.common.tasks import BinaryTask, Task
from components.train.recipe import setup, train


def tabular_spec(prep: Preprocessing, task: Task | None = None) -> ModelSpec:
    """The spec the train step gives a factory for `prep`'s encoding (default: a binary label)."""
    return TabularModality().model_spec(prep, task or BinaryTask("label", 1))


def fit(
    cfg: TrainingConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    spec: ModelSpec,
    log: Callable[[str], Any] = print,
    *,
    task: Task,
    checkpoint: Path | None = None,
    on_checkpoint: Callable[[Path], Any] | None = None,
    max_steps: int | None = None,
    init_state: Path | None = None,
    init_source: str = "",
) -> tuple[nn.Module, list[dict[str, float]]]:
    """`setup`, then `train` on rows already encoded in memory: the best model (on the CPU,
    unwrapped) and the per-epoch history."""
    built = setup(
        cfg,
        spec,
        ArrayBatches(x_train, y_train, x_val, y_val),
        task,
        init_state=init_state,
        init_source=init_source,
        log=log,
    )
    return train(cfg, built, log, checkpoint=checkpoint, on_checkpoint=on_checkpoint, max_steps=max_steps)
