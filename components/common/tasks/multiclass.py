"""Multi-class classification: K logits, softmax probabilities, argmax or a class-of-interest rule."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.common.tasks import multiclass_calibration
from components.common.tasks.base import LABEL_INDICATOR, Task
from components.common.tasks.multiclass_metrics import SUMMARY_METRICS, per_class_names

if TYPE_CHECKING:
    import torch


def label_text(values: pd.Series) -> pd.Series:
    """Label values as text, numbers without a spurious '.0' (a CSV's 2 and a Parquet's 2.0 agree)."""
    if pd.api.types.is_numeric_dtype(values):
        return values.map(lambda v: str(int(v)) if pd.notna(v) and float(v).is_integer() else str(v))
    return values.astype(str)


def balanced_weights(train_targets: np.ndarray, k: int) -> np.ndarray:
    """n / (K * n_k) per class (scikit-learn's 'balanced'); an absent class weighs 0."""
    counts = np.bincount(np.asarray(train_targets, dtype=np.int64), minlength=k).astype(np.float64)
    return np.divide(len(train_targets), k * counts, out=np.zeros(k), where=counts > 0)


class MulticlassTask(Task):
    """One of K classes per row; `classes` fixes the output order."""

    name = "multiclass"

    def __init__(
        self, label: str, positive_value: int | str | None = None, classes: Sequence[Any] | None = None
    ) -> None:
        """A task over `label`.

        Args:
            positive_value: The class of interest (its share is the prevalence the gate
                bounds), or None.
            classes: The output order; None until `resolve` reads the training split.
        """
        super().__init__(label, positive_value if positive_value is not None else "")
        self.class_of_interest = None if positive_value in (None, "") else str(positive_value)
        self.fixed = classes is not None
        self.classes = [str(c) for c in classes] if classes is not None else []

    def resolve(self, train_labels: pd.Series) -> MulticlassTask:
        """This task with its classes: the configured ones, or the training split's, sorted."""
        if self.fixed:
            return self
        found = sorted(label_text(train_labels.dropna()).unique())
        return MulticlassTask(self.label, self.class_of_interest, found)

    @property
    def n_outputs(self) -> int:
        """One logit per class."""
        return len(self.classes)

    def targets(self, labels: pd.Series) -> np.ndarray:
        """Index of each label in `classes`; -1 for a value outside them (the gate rejects those)."""
        index = {name: i for i, name in enumerate(self.classes)}
        return label_text(labels).map(index).fillna(-1).to_numpy(dtype=np.int64)

    def loss_targets(self, targets: np.ndarray) -> np.ndarray:
        """Class indices as int64, what CrossEntropyLoss takes."""
        return np.asarray(targets, dtype=np.int64)

    def loss(self, train_targets: np.ndarray, class_weighting: bool, device: torch.device) -> torch.nn.Module:
        """Softmax cross-entropy, classes weighted 'balanced' when class weighting is on."""
        from components.common.tasks.losses import SoftmaxCrossEntropy

        k = self.n_outputs
        weights = balanced_weights(train_targets, k) if class_weighting else np.ones(k)
        return SoftmaxCrossEntropy(weights, device)

    def prior_loss(self, train_targets: np.ndarray, targets: np.ndarray, class_weighting: bool) -> float:
        """Weighted cross-entropy of the best constant distribution on `targets`.

        With class weights w and counts n, CrossEntropyLoss divides by the summed weights, so
        the best constant is q_k = w_k n_k / sum(w n), and its loss is that distribution's entropy.
        """
        k = self.n_outputs
        weights = balanced_weights(train_targets, k) if class_weighting else np.ones(k)
        mass = weights * np.bincount(np.asarray(targets, dtype=np.int64), minlength=k)
        if mass.sum() <= 0:
            return 0.0
        q = mass[mass > 0] / mass.sum()
        return float(-(q * np.log(q)).sum())

    def stratify_key(self, labels: pd.Series) -> pd.Series:
        """The label itself."""
        return labels

    def split_summary(self, targets: np.ndarray) -> dict[str, float]:
        """Rows and the share of every class (`share_<class>`)."""
        counts = np.bincount(np.asarray(targets)[np.asarray(targets) >= 0], minlength=len(self.classes))
        total = max(len(targets), 1)
        return {
            "rows": len(targets),
            **{f"share_{c}": float(n / total) for c, n in zip(self.classes, counts, strict=True)},
        }

    def describe(self, targets: np.ndarray) -> str:
        """'N classes, smallest M rows'."""
        counts = np.bincount(np.asarray(targets)[np.asarray(targets) >= 0], minlength=len(self.classes))
        smallest = int(np.argmin(counts)) if len(counts) else 0
        return f"{len(self.classes)} classes, fewest rows: {self.classes[smallest]} ({int(counts[smallest])})"

    def degenerate(self, summary: Mapping[str, float]) -> bool:
        """A class with no row in the split."""
        return any(summary.get(f"share_{c}", 0.0) == 0.0 for c in self.classes)

    def gate_columns(self, labels: pd.Series) -> dict[str, np.ndarray]:
        """The class-of-interest indicator, when there is one."""
        if self.class_of_interest is None:
            return {}
        return {LABEL_INDICATOR: (label_text(labels) == self.class_of_interest).to_numpy(dtype=np.int8)}

    def label_expectations(self, prevalence: Any, check_meta: Any) -> list[Any]:
        """At least two label values, only the configured classes, and the prevalence bounds."""
        import great_expectations.expectations as gxe

        out: list[Any] = [
            gxe.ExpectColumnUniqueValueCountToBeBetween(
                column=self.label,
                min_value=2,
                meta=check_meta("multiclass_label", self.label, "at least two label values", "error"),
            )
        ]
        if self.fixed:
            out.append(
                gxe.ExpectColumnDistinctValuesToBeInSet(
                    column=self.label,
                    value_set=self.classes,
                    meta=check_meta(
                        "label_classes", self.label, f"only {self.classes} (dataset.classes)", "error"
                    ),
                )
            )
        if prevalence is not None and self.class_of_interest is not None:
            out.append(
                gxe.ExpectColumnMeanToBeBetween(
                    column=LABEL_INDICATOR,
                    min_value=prevalence.min,
                    max_value=prevalence.max,
                    meta=check_meta(
                        "prevalence",
                        self.label,
                        f"share of {self.class_of_interest} between {prevalence.min} and {prevalence.max}",
                        prevalence.severity,
                    ),
                )
            )
        return out

    def probabilities(self, record: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """softmax of the calibrated logits, (rows, K)."""
        logits = np.asarray(outputs["logit"], dtype=np.float64).reshape(-1, self.n_outputs)
        return multiclass_calibration.apply(record, logits)

    def uncalibrated(self, logits: np.ndarray) -> np.ndarray:
        """softmax(logits)."""
        return multiclass_calibration.softmax(
            np.asarray(logits, dtype=np.float64).reshape(-1, self.n_outputs)
        )

    def decide(self, probabilities: np.ndarray, point: Mapping[str, Any]) -> np.ndarray:
        """argmax; with a class of interest and a threshold, that class wherever its probability
        reaches the threshold, else the most probable other class."""
        p = np.asarray(probabilities, dtype=np.float64)
        chosen = point.get("class")
        if chosen is None:
            return p.argmax(axis=1)
        c = self.classes.index(str(chosen))
        others = p.copy()
        others[:, c] = -math.inf
        return np.where(p[:, c] >= float(point["threshold"]), c, others.argmax(axis=1))

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The whole-table metrics, then `<metric>_<class>` per class."""
        return (*SUMMARY_METRICS, *per_class_names(self.classes))
