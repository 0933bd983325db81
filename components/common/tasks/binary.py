"""Binary classification: one logit, a positive label value, a threshold on its probability."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.common import calibration
from components.common.tasks.base import LABEL_INDICATOR, Scores, Task, prevalence_expectation

if TYPE_CHECKING:
    import torch

    from components.common.tasks.serving import ServingHead

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
            out.append(prevalence_expectation(self.label, prevalence, check_meta))
        return out

    def fit_calibration(
        self,
        method: str,
        fit_logits: np.ndarray,
        fit_y: np.ndarray,
        select_logits: np.ndarray,
        select_y: np.ndarray,
    ) -> tuple[dict[str, Any], dict[str, float]]:
        """Temperature, Platt, isotonic or none (`binary_calibration.fit_and_select`)."""
        from components.common.tasks.binary_calibration import fit_and_select

        return fit_and_select(method, fit_logits, fit_y, select_logits, select_y)

    def calibration_measures(
        self, probabilities: np.ndarray, targets: np.ndarray, bins: int
    ) -> dict[str, float]:
        """NLL, Brier, ECE and MCE of the positive-class probability."""
        from components.common.tasks.binary_measures import summary

        return summary(probabilities, targets, bins)

    def reliability(self, probabilities: np.ndarray, targets: np.ndarray, bins: int) -> dict[str, list[Any]]:
        """Mean predicted probability against the observed positive rate."""
        from components.common.tasks.binary_measures import reliability

        return reliability(probabilities, targets, bins)

    def describe_calibration(self, record: Mapping[str, Any]) -> str:
        """'temperature T=1.830', 'platt a=.. b=..', 'isotonic (12 knots)' or the method."""
        params = record.get("params", {})
        if record["method"] == "temperature":
            return f"temperature T={params['temperature']:.3f}"
        if record["method"] == "platt":
            return f"platt a={params['a']:.3f} b={params['b']:.3f}"
        if record["method"] == "isotonic":
            return f"isotonic ({len(params['x'])} knots)"
        return str(record["method"])

    def folds_into_graph(self, record: Mapping[str, Any]) -> bool:
        """The temperature map."""
        return bool(record["method"] == "temperature")

    @property
    def reliability_axes(self) -> tuple[str, str]:
        """Predicted probability against the observed positive rate."""
        return ("predicted probability", "observed positive rate")

    def serving_graph(self, onnx_model: bytes, record: Mapping[str, Any]) -> bytes:
        """The temperature folded in; other maps stay in calibration.json."""
        if self.folds_into_graph(record):
            return calibration.fold_temperature(onnx_model, record["params"]["temperature"])
        return onnx_model

    def operating_point(
        self,
        chosen_on: tuple[str, np.ndarray, np.ndarray],
        measured_on: tuple[str, np.ndarray, np.ndarray],
        target_recall: Any,
        target_specificity: float | None,
        fixed_threshold: float,
        level: float,
    ) -> dict[str, Any]:
        """The threshold for the recall or specificity target (`operating_point.operating_point`)."""
        from components.common.tasks.operating_point import operating_point

        recall = None if target_recall is None else float(target_recall)
        return operating_point(chosen_on, measured_on, recall, target_specificity, fixed_threshold, level)

    def prediction_columns(
        self, logits: np.ndarray, probabilities: np.ndarray, decisions: np.ndarray
    ) -> dict[str, np.ndarray]:
        """logit, probability and decision (0/1)."""
        return {"logit": logits, "probability": probabilities, "decision": decisions}

    def logits_from_columns(self, frame: pd.DataFrame) -> np.ndarray:
        """The `logit` column."""
        return frame["logit"].to_numpy(dtype=np.float64)

    def answer_columns(self, probabilities: np.ndarray, decisions: np.ndarray) -> dict[str, np.ndarray]:
        """probability and decision."""
        return {"probability": probabilities, "decision": np.asarray(decisions, dtype=np.int64)}

    def serving_head(self, record: Mapping[str, Any]) -> ServingHead:
        """`BinaryHead`: probability and decision."""
        from components.common.tasks.serving import BinaryHead

        return BinaryHead(record)

    def served_metrics(self, targets: np.ndarray, answers: pd.DataFrame) -> dict[str, float]:
        """Recall, precision, ROC AUC and PR AUC of the served probabilities and decisions."""
        from components.common.tasks.binary_metrics import served_metrics

        return served_metrics(
            np.asarray(targets).astype(bool),
            answers["probability"].to_numpy(np.float64),
            answers["decision"].to_numpy(np.int64).astype(bool),
        )

    def labeled_positives(self, targets: np.ndarray) -> int:
        """Positive labels."""
        return int(np.sum(targets))

    @property
    def answer_names(self) -> tuple[str, ...]:
        """probability."""
        return ("probability",)

    def ranking_score(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        """ROC AUC of the positive-class probability."""
        from components.common.tasks.ranking import roc_auc

        return roc_auc(targets, probabilities)

    def quality_influence(
        self, metric: str, targets: np.ndarray, probabilities: np.ndarray, decisions: np.ndarray
    ) -> tuple[float, np.ndarray, str]:
        """ROC AUC of the probability, or recall at the operating point, per row."""
        from components.common.tasks.ranking import auc_influence, rate_influence

        y = np.asarray(targets) == 1
        if metric == "recall":
            return (*rate_influence(np.asarray(decisions) == 1, y), "recall")
        return (*auc_influence(y, self.output_array(probabilities)), "ROC AUC")

    def floor_rates(self, targets: np.ndarray, decisions: np.ndarray) -> dict[str, tuple[float, int, str]]:
        """Recall on the positive rows, specificity on the negative ones."""
        from components.common.tasks.ranking import share

        y, d = np.asarray(targets), np.asarray(decisions)
        return {
            name: (share(d[y == cls] == cls), int(np.sum(y == cls)), name)
            for name, cls in (("recall", 1), ("specificity", 0))
        }

    def needs_positives(self, metric: str) -> bool:
        """Recall, ROC AUC and PR AUC."""
        return metric in ("recall", "roc_auc", "pr_auc")

    @property
    def default_decay(self) -> dict[str, float]:
        """ROC AUC 0.05, recall 0.1."""
        return {"roc_auc": 0.05, "recall": 0.1}

    def output_array(self, output: np.ndarray) -> np.ndarray:
        """One value per row: (n,)."""
        return np.asarray(output, dtype=np.float64).reshape(-1)

    def from_class_columns(self, matrix: np.ndarray) -> np.ndarray:
        """The positive class's column."""
        return np.asarray(matrix, dtype=np.float64)[:, 1]

    def probabilities(self, record: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The positive class's calibrated probability (`calibration.probabilities`)."""
        return calibration.probabilities(record, outputs)

    def uncalibrated(self, logits: np.ndarray) -> np.ndarray:
        """sigmoid(logit)."""
        return calibration.sigmoid(np.asarray(logits, dtype=np.float64).reshape(-1))

    def decide(self, probabilities: np.ndarray, point: Mapping[str, Any]) -> np.ndarray:
        """Positive (1) where the probability reaches the operating threshold."""
        return (np.asarray(probabilities) >= float(point["threshold"])).astype(np.int64)

    def confidence(self, probabilities: np.ndarray, decisions: np.ndarray) -> np.ndarray:
        """p for a positive decision, 1 - p for a negative one."""
        p = np.asarray(probabilities, dtype=np.float64)
        return np.where(np.asarray(decisions) == 1, p, 1.0 - p)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """`METRICS`."""
        return METRICS

    @property
    def gated_metrics(self) -> tuple[str, ...]:
        """Every metric but the two losses."""
        return tuple(m for m in METRICS if m not in ("brier", "log_loss"))

    @property
    def calibration_methods(self) -> tuple[str, ...]:
        """Temperature, Platt, isotonic, or none."""
        return ("temperature", "platt", "isotonic", "none")

    @property
    def operating_targets(self) -> tuple[str, ...]:
        """A recall or a specificity."""
        return ("recall", "specificity")

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        """Recall, precision, ROC-AUC and PR-AUC."""
        return ("recall", "precision", "roc_auc", "pr_auc")

    @property
    def slice_metrics(self) -> tuple[str, ...]:
        """Recall, specificity, precision, ROC-AUC."""
        return ("recall", "specificity", "precision", "roc_auc")

    def scores(self, targets: np.ndarray, probabilities: np.ndarray, point: Mapping[str, Any]) -> Scores:
        """`BinaryScores` at the point's threshold."""
        from components.common.tasks.binary_metrics import BinaryScores

        return BinaryScores(targets, probabilities, float(point["threshold"]))

    def slice_counts(self, targets: np.ndarray) -> dict[str, int]:
        """Positives."""
        return {"positives": int(np.sum(targets))}

    def errors(self, targets: np.ndarray, decisions: np.ndarray) -> dict[str, np.ndarray]:
        """False negatives and false positives."""
        y, d = np.asarray(targets), np.asarray(decisions)
        return {"false negative": (y == 1) & (d == 0), "false positive": (y == 0) & (d == 1)}

    def baseline_point(
        self, probabilities: np.ndarray, targets: np.ndarray, model_metrics: Mapping[str, float]
    ) -> tuple[dict[str, Any], str]:
        """The threshold where the baseline reaches the model's recall (threshold metrics then
        compare specificity and precision at equal recall)."""
        from components.common.tasks.binary_metrics import matching_recall_threshold

        threshold = matching_recall_threshold(probabilities, targets, model_metrics["recall"])
        return {"threshold": threshold}, "its threshold matches the model's recall"

    @property
    def baseline_metrics(self) -> tuple[str, ...]:
        """ROC-AUC, PR-AUC, recall, specificity, precision, balanced accuracy."""
        return ("roc_auc", "pr_auc", "recall", "specificity", "precision", "balanced_accuracy")

    def describe_point(self, point: Mapping[str, Any]) -> str:
        """'operating threshold T'."""
        return f"operating threshold {float(point['threshold']):.4g}"

    def curves(self, targets: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
        """ROC (with thresholds) and precision-recall, thinned to 200 points."""
        from components.common.tasks.binary_metrics import curves

        return curves(targets, probabilities)
