"""The task interface: labels to targets, loss, label checks, the numpy head and the metrics.

Steps hold a `Task` and call it; they never ask which task it is. The module imports numpy
and pandas only (the serving environment imports it); torch and Great Expectations are
imported inside the methods that need them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

LABEL_INDICATOR = "__kubeloop_positive"
"""Derived gate column: 1 where the label is the class of interest."""


class Task(ABC):
    """One prediction task over one label column."""

    name: str
    """The `dataset.task` value."""

    classes: list[str]
    """The output classes in order, as text; empty where the task has a single score (binary)."""

    def __init__(self, label: str, positive_value: int | str) -> None:
        """A task over the column `label`; `positive_value` marks the class of interest."""
        self.label = label
        self.positive_value = positive_value
        self.classes = []

    def resolve(self, train_labels: pd.Series) -> Task:
        """This task with whatever it learns from the training split's labels (its classes)."""
        return self

    @property
    @abstractmethod
    def n_outputs(self) -> int:
        """Width of the model's logit output."""

    @abstractmethod
    def targets(self, labels: pd.Series) -> np.ndarray:
        """Class index (int64) of every label value."""

    def frame_targets(self, frame: pd.DataFrame) -> np.ndarray:
        """`targets` of a frame's label column."""
        return self.targets(frame[self.label])

    @abstractmethod
    def loss_targets(self, targets: np.ndarray) -> np.ndarray:
        """Targets in the dtype and shape the loss takes."""

    @abstractmethod
    def loss(self, train_targets: np.ndarray, class_weighting: bool, device: torch.device) -> torch.nn.Module:
        """The training loss on (logits of shape (batch, n_outputs), `loss_targets`)."""

    @abstractmethod
    def prior_loss(self, train_targets: np.ndarray, targets: np.ndarray, class_weighting: bool) -> float:
        """Loss on `targets` of the best constant prediction fitted on `train_targets`.

        The bar that a model which learned nothing meets (the smoke test's baseline).
        """

    @abstractmethod
    def stratify_key(self, labels: pd.Series) -> pd.Series:
        """The key random splits stratify on, one value per row."""

    @abstractmethod
    def split_summary(self, targets: np.ndarray) -> dict[str, float]:
        """What the schema records of one split's labels (rows and class shares)."""

    @abstractmethod
    def describe(self, targets: np.ndarray) -> str:
        """A few words on the labels of some rows, for progress lines (e.g. '42 positives')."""

    @abstractmethod
    def degenerate(self, summary: Mapping[str, float]) -> bool:
        """Whether a split summary lacks a class that training, calibration or the gate need."""

    @abstractmethod
    def gate_columns(self, labels: pd.Series) -> dict[str, np.ndarray]:
        """Derived 0/1 columns whose means the label expectations check."""

    @abstractmethod
    def label_expectations(self, prevalence: Any, check_meta: Any) -> list[Any]:
        """Great Expectations expectations on the label column and `gate_columns`.

        Args:
            prevalence: `validation.prevalence` bounds, or None.
            check_meta: `checks.check_meta(check, column, expected, severity)`.
        """

    @abstractmethod
    def probabilities(self, record: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Calibrated probabilities from an ONNX run's named outputs, as serving computes them."""

    @abstractmethod
    def uncalibrated(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities of the raw logits (the identity calibration)."""

    @abstractmethod
    def decide(self, probabilities: np.ndarray, point: Mapping[str, Any]) -> np.ndarray:
        """The decision of every row at an operating point (calibration.json's)."""

    @property
    @abstractmethod
    def metric_names(self) -> tuple[str, ...]:
        """Held-out metrics, in report order; gates, rollout analysis and decay may name these."""
