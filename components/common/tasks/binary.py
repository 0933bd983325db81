"""Binary classification: one logit, a positive label value, a threshold on its probability."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.common import calibration
from components.common.tasks.base import LABEL_INDICATOR, Task

if TYPE_CHECKING:
    import torch

METRICS = (
    "recall",
    "specificity",
    "precision",
    "npv",
    "f1",
    "balanced_accuracy",
    "accuracy",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
)
"""The held-out metrics, in report order (recall is sensitivity, precision is PPV)."""


def is_positive(values: pd.Series, positive_value: int | str) -> np.ndarray:
    """Which labels equal the positive value; numeric labels compare as numbers (1 == 1.0)."""
    if pd.api.types.is_numeric_dtype(values):
        try:
            return (values.to_numpy(dtype=np.float64) == float(positive_value)).astype(bool)
        except ValueError:
            return np.zeros(len(values), dtype=bool)
    return (values.astype(str) == str(positive_value)).to_numpy(dtype=bool)


def positive_weight(train_targets: np.ndarray, class_weighting: bool) -> float:
    """With class weighting, a positive weighs negatives/positives of the training split."""
    if not class_weighting:
        return 1.0
    positives = float(np.sum(train_targets))
    return (len(train_targets) - positives) / max(positives, 1.0)


class BinaryTask(Task):
    """Positive (the class of interest) against everything else."""

    name = "binary"

    @property
    def n_outputs(self) -> int:
        """One logit."""
        return 1

    def targets(self, labels: pd.Series) -> np.ndarray:
        """1 for the positive label value, else 0."""
        return is_positive(labels, self.positive_value).astype(np.int64)

    def loss_targets(self, targets: np.ndarray) -> np.ndarray:
        """0/1 as float32, the dtype BCEWithLogitsLoss takes."""
        return np.asarray(targets, dtype=np.float32)

    def loss(self, train_targets: np.ndarray, class_weighting: bool, device: torch.device) -> torch.nn.Module:
        """Binary cross-entropy on the single logit column."""
        from components.common.tasks.losses import BinaryCrossEntropy

        return BinaryCrossEntropy(positive_weight(train_targets, class_weighting), device)

    def prior_loss(self, train_targets: np.ndarray, targets: np.ndarray, class_weighting: bool) -> float:
        """Weighted cross-entropy of the constant probability that minimises it on `targets`."""
        weight = positive_weight(train_targets, class_weighting)
        a, b = weight * float(np.mean(targets)), 1.0 - float(np.mean(targets))
        if a <= 0 or b <= 0:
            return 0.0
        p = a / (a + b)
        return -(a * math.log(p) + b * math.log(1 - p))

    def stratify_key(self, labels: pd.Series) -> pd.Series:
        """The label itself."""
        return labels

    def split_summary(self, targets: np.ndarray) -> dict[str, float]:
        """Rows and prevalence."""
        return {"rows": len(targets), "prevalence": float(np.mean(targets)) if len(targets) else 0.0}

    def describe(self, targets: np.ndarray) -> str:
        """'N positives'."""
        return f"{int(np.sum(targets))} positives"

    def degenerate(self, summary: Mapping[str, float]) -> bool:
        """No positive or no negative case."""
        return summary.get("prevalence", 0.0) in (0.0, 1.0)

    def gate_columns(self, labels: pd.Series) -> dict[str, np.ndarray]:
        """The 0/1 positive indicator whose sum and mean are checked."""
        return {LABEL_INDICATOR: is_positive(labels, self.positive_value).astype(np.int8)}

    def label_expectations(self, prevalence: Any, check_meta: Any) -> list[Any]:
        """Exactly two label values, some positives, and the prevalence bounds when set."""
        import great_expectations.expectations as gxe

        out: list[Any] = [
            gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=self.label,
                min_value=2,
                max_value=2,
                meta=check_meta("binary_label", self.label, "exactly two label values", "error"),
            ),
            gxe.ExpectColumnSumToBeBetween(
                column=LABEL_INDICATOR,
                min_value=1,
                meta=check_meta(
                    "positive_present", self.label, f"some rows = {self.positive_value}", "error"
                ),
            ),
        ]
        if prevalence is not None:
            out.append(
                gxe.ExpectColumnMeanToBeBetween(
                    column=LABEL_INDICATOR,
                    min_value=prevalence.min,
                    max_value=prevalence.max,
                    meta=check_meta(
                        "prevalence",
                        self.label,
                        f"between {prevalence.min} and {prevalence.max}",
                        prevalence.severity,
                    ),
                )
            )
        return out

    def probabilities(self, record: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The positive class's calibrated probability (`calibration.probabilities`)."""
        return calibration.probabilities(record, outputs)

    def uncalibrated(self, logits: np.ndarray) -> np.ndarray:
        """sigmoid(logit)."""
        return calibration.sigmoid(np.asarray(logits, dtype=np.float64).reshape(-1))

    def decide(self, probabilities: np.ndarray, point: Mapping[str, Any]) -> np.ndarray:
        """Positive (1) where the probability reaches the operating threshold."""
        return (np.asarray(probabilities) >= float(point["threshold"])).astype(np.int64)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """`METRICS`."""
        return METRICS
