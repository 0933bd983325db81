"""The task interface: labels to targets, loss, label checks, the numpy head and the metrics.

Steps hold a `Task` and call it; they never ask which task it is. The module imports numpy
and pandas only (the serving environment imports it); torch and Great Expectations are
imported inside the methods that need them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

    from components.common.tasks.serving import ServingHead

LABEL_INDICATOR = "__kubeloop_positive"
"""Derived gate column: 1 where the label is the class of interest."""
LABEL_TEXT = "__kubeloop_label_text"
"""Derived gate column: the label as text, checked against the configured classes."""


def prevalence_expectation(label: str, prevalence: Any, check_meta: Any, share_of: str = "") -> Any:
    """The gate's bounds on the share of the class of interest (`validation.prevalence`)."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnMeanToBeBetween(
        column=LABEL_INDICATOR,
        min_value=prevalence.min,
        max_value=prevalence.max,
        meta=check_meta(
            "prevalence",
            label,
            f"{share_of}between {prevalence.min} and {prevalence.max}",
            prevalence.severity,
        ),
    )


class Scores(ABC):
    """Labels, probabilities and decisions of a set of rows, prepared once for every metric."""

    @abstractmethod
    def point(self) -> dict[str, float]:
        """Every metric on the rows as they are (NaN where undefined)."""

    @abstractmethod
    def summary(self) -> dict[str, Any]:
        """The metrics a report shows (undefined ratios as scikit-learn's zero_division) and counts."""

    @abstractmethod
    def intervals(self, resamples: int, level: float, seed: int = 0) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap interval of every metric."""

    @abstractmethod
    def paired(
        self, reference: Scores, metrics: Sequence[str], resamples: int, level: float, seed: int = 0
    ) -> dict[str, dict[str, float]]:
        """This minus `reference` (another model on the same rows) per metric, with a paired
        bootstrap interval: metric -> {candidate, reference, difference, low, high}."""

    @abstractmethod
    def confusion(self) -> tuple[list[str], list[list[int]]]:
        """(class names, counts with one row per true class and one column per decision)."""

    @abstractmethod
    def subset(self, rows: np.ndarray) -> Scores:
        """The same scores on the rows where the boolean mask `rows` is true (a slice)."""


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
    def fit_calibration(
        self,
        method: str,
        fit_logits: np.ndarray,
        fit_y: np.ndarray,
        select_logits: np.ndarray,
        select_y: np.ndarray,
    ) -> tuple[dict[str, Any], dict[str, float]]:
        """Fit `method` (`auto`: every map and the identity) on one split, choose by NLL on another.

        Returns:
            The record (`method`, `params`) and every candidate's NLL on the selection split.
        """

    @abstractmethod
    def calibration_measures(
        self, probabilities: np.ndarray, targets: np.ndarray, bins: int
    ) -> dict[str, float]:
        """NLL, Brier, ECE, MCE (multi-class: top-label, and classwise ECE)."""

    @abstractmethod
    def reliability(self, probabilities: np.ndarray, targets: np.ndarray, bins: int) -> dict[str, list[Any]]:
        """Reliability curve: mean predicted probability, observed rate and rows per bin."""

    @abstractmethod
    def describe_calibration(self, record: Mapping[str, Any]) -> str:
        """One line naming the map, e.g. 'temperature T=1.83'."""

    @abstractmethod
    def folds_into_graph(self, record: Mapping[str, Any]) -> bool:
        """Whether `serving_graph` adds a `probability` output for this map."""

    @property
    @abstractmethod
    def reliability_axes(self) -> tuple[str, str]:
        """(x, y) axis labels of the reliability diagram."""

    @abstractmethod
    def serving_graph(self, onnx_model: bytes, record: Mapping[str, Any]) -> bytes:
        """The ONNX graph serving loads (binary: a temperature folded in as `probability`)."""

    @abstractmethod
    def operating_point(
        self,
        chosen_on: tuple[str, np.ndarray, np.ndarray],
        measured_on: tuple[str, np.ndarray, np.ndarray],
        target_recall: Any,
        target_specificity: float | None,
        fixed_threshold: float,
        level: float,
    ) -> dict[str, Any]:
        """The operating point chosen on one split and measured on both, with Wilson intervals.

        Args:
            chosen_on: (split, calibrated probabilities, targets) the rule is set on.
            measured_on: The same for a split held out from the choice.
            target_recall: calibration.target_recall (a number, or {class, value}).
            target_specificity: calibration.target_specificity.
            fixed_threshold: evaluation.threshold (binary, when no target is set).
            level: Coverage of the intervals.

        Returns:
            `threshold`, `target`, `chosen_on`, `confidence` and `rates` per split: each rate
            with a `<rate>_interval`.
        """

    @abstractmethod
    def prediction_columns(
        self, logits: np.ndarray, probabilities: np.ndarray, decisions: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Stored-prediction columns (predictions.parquet): raw logits, calibrated
        probabilities and the decision, so every metric can be recomputed from them."""

    @abstractmethod
    def logits_from_columns(self, frame: pd.DataFrame) -> np.ndarray:
        """The raw logits back from stored predictions."""

    @abstractmethod
    def answer_columns(self, probabilities: np.ndarray, decisions: np.ndarray) -> dict[str, np.ndarray]:
        """What serving answers, as the scalar columns prediction drift watches."""

    @abstractmethod
    def serving_head(self, record: Mapping[str, Any]) -> ServingHead:
        """What the Seldon class answers for a version calibrated by `record`."""

    @abstractmethod
    def served_metrics(self, targets: np.ndarray, answers: pd.DataFrame) -> dict[str, float]:
        """Metrics of served answers (the request log's answer columns and decisions) on rows
        whose labels arrived: what performance decay compares with the model card."""

    @property
    @abstractmethod
    def answer_names(self) -> tuple[str, ...]:
        """The request log's score fields of one row, in `output_array` order (binary:
        probability; multi-class: probability_<class> per class)."""

    @abstractmethod
    def ranking_score(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        """How well served probabilities rank labeled rows, the score rollout analysis compares
        with main's (binary: ROC AUC; multi-class: macro one-vs-rest ROC AUC); NaN when a class
        has no row."""

    @abstractmethod
    def quality_influence(
        self, metric: str, targets: np.ndarray, probabilities: np.ndarray, decisions: np.ndarray
    ) -> tuple[float, np.ndarray, str]:
        """The rollout's quality metric on labeled rows, each row's influence on it (their
        squares sum to its variance; paired rows' differences give a difference's variance) and
        what it is in words. `metric`: roc_auc (binary: ROC AUC; multi-class: macro one-vs-rest)
        or recall (of the class of interest at the operating point, else macro)."""

    @abstractmethod
    def floor_rates(self, targets: np.ndarray, decisions: np.ndarray) -> dict[str, tuple[float, int, str]]:
        """What the rollout floors hold decisions to: `recall` and `specificity` -> (rate, rows it
        is measured on, what it is in words), for the class of interest."""

    def for_point(self, point: Mapping[str, Any]) -> Task:
        """This task as a version calibrated to the operating point `point` decides (multi-class:
        the class the point thresholds becomes the class of interest)."""
        return self

    @abstractmethod
    def labeled_positives(self, targets: np.ndarray) -> int:
        """The label count that limits what can be judged (binary: positives; multi-class: the
        rows of the rarest class)."""

    @abstractmethod
    def needs_positives(self, metric: str) -> bool:
        """Whether `metric` is only judged with `min_positives` of `labeled_positives`."""

    @property
    @abstractmethod
    def default_decay(self) -> dict[str, float]:
        """monitoring.performance.max_drop when the config leaves it unset."""

    @abstractmethod
    def output_array(self, output: np.ndarray) -> np.ndarray:
        """One ONNX output (logits or probabilities) in this task's float64 shape."""

    @abstractmethod
    def from_class_columns(self, matrix: np.ndarray) -> np.ndarray:
        """Probabilities in this task's shape from one column per class index (predict_proba)."""

    @abstractmethod
    def probabilities(self, record: Mapping[str, Any], outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Calibrated probabilities from an ONNX run's named outputs, as serving computes them."""

    @abstractmethod
    def uncalibrated(self, logits: np.ndarray) -> np.ndarray:
        """Probabilities of the raw logits (the identity calibration)."""

    @abstractmethod
    def decide(self, probabilities: np.ndarray, point: Mapping[str, Any]) -> np.ndarray:
        """The decision of every row at an operating point (calibration.json's)."""

    @abstractmethod
    def confidence(self, probabilities: np.ndarray, decisions: np.ndarray) -> np.ndarray:
        """The calibrated probability of each row's decided answer (how sure the decision was)."""

    @property
    @abstractmethod
    def metric_names(self) -> tuple[str, ...]:
        """Held-out metrics, in report order; gates, rollout analysis and decay may name these."""

    @property
    @abstractmethod
    def gated_metrics(self) -> tuple[str, ...]:
        """The metrics where higher is better: floors and champion margins may name these."""

    def knows_metric(self, name: str) -> bool:
        """Whether `name` is one of `gated_metrics` (a floor or margin may name it)."""
        return name in self.gated_metrics

    @property
    @abstractmethod
    def calibration_methods(self) -> tuple[str, ...]:
        """The calibration maps this task fits (`auto` picks among them)."""

    @property
    @abstractmethod
    def operating_targets(self) -> tuple[str, ...]:
        """What an operating point may target: recall, specificity, a class."""

    @property
    def class_of_interest(self) -> str | None:
        """The class whose recall a target may set; None when there is none."""
        return str(self.positive_value)

    @property
    @abstractmethod
    def headline_metrics(self) -> tuple[str, ...]:
        """The few metrics a run's summary, the registry index and the KFP metrics show."""

    @property
    @abstractmethod
    def slice_metrics(self) -> tuple[str, ...]:
        """The metrics reported per slice (scanner, site, age band)."""

    @abstractmethod
    def scores(self, targets: np.ndarray, probabilities: np.ndarray, point: Mapping[str, Any]) -> Scores:
        """The rows' scores at an operating point, ready for metrics and intervals."""

    @abstractmethod
    def slice_counts(self, targets: np.ndarray) -> dict[str, int]:
        """Label counts a slice table shows beside its rows (binary: positives)."""

    @abstractmethod
    def errors(self, targets: np.ndarray, decisions: np.ndarray) -> dict[str, np.ndarray]:
        """Each kind of error (e.g. 'false negative') and the rows that make it."""

    @abstractmethod
    def baseline_point(
        self, probabilities: np.ndarray, targets: np.ndarray, model_metrics: Mapping[str, float]
    ) -> tuple[dict[str, Any], str]:
        """Where to cut a baseline's probabilities so it compares fairly with the model, and how
        that reads in a report (binary: at the model's recall)."""

    @property
    @abstractmethod
    def baseline_metrics(self) -> tuple[str, ...]:
        """The rows of the model-beside-baseline table."""

    @abstractmethod
    def describe_point(self, point: Mapping[str, Any]) -> str:
        """The decision rule of an operating point in words (e.g. 'operating threshold 0.31')."""

    @abstractmethod
    def curves(self, targets: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
        """Curves for the report and the Kubeflow UI (binary: ROC with thresholds, PR)."""
