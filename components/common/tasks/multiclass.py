"""Multi-class classification: K logits, softmax probabilities, argmax or a class-of-interest rule."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.common.tasks import multiclass_calibration
from components.common.tasks.base import LABEL_INDICATOR, LABEL_TEXT, Scores, Task, prevalence_expectation
from components.common.tasks.multiclass_metrics import PER_CLASS_METRICS, SUMMARY_METRICS, per_class_names

if TYPE_CHECKING:
    import torch

    from components.common.tasks.serving import ServingHead


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
        self.chosen_class = None if positive_value in (None, "") else str(positive_value)
        self.fixed = classes is not None
        self.classes = [str(c) for c in classes] if classes is not None else []

    def resolve(self, train_labels: pd.Series) -> MulticlassTask:
        """This task with its classes: the configured ones, or the training split's, sorted."""
        if self.fixed:
            return self
        found = sorted(label_text(train_labels.dropna()).unique())
        return MulticlassTask(self.label, self.chosen_class, found)

    @property
    def class_of_interest(self) -> str | None:
        """dataset.positive_value when it was set."""
        return self.chosen_class

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
        """The label as text (checked against fixed classes), and the class-of-interest indicator."""
        text = label_text(labels).where(labels.notna())
        columns = {LABEL_TEXT: text.to_numpy(dtype=object)} if self.fixed else {}
        if self.chosen_class is not None:
            columns[LABEL_INDICATOR] = (text == self.chosen_class).to_numpy(dtype=np.int8)
        return columns

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
                gxe.ExpectColumnValuesToBeInSet(
                    column=LABEL_TEXT,
                    value_set=self.classes,
                    meta=check_meta(
                        "label_classes",
                        self.label,
                        f"only {self.classes}: add the value to dataset.classes or remove those rows",
                        "error",
                    ),
                )
            )
        if prevalence is not None and self.chosen_class is not None:
            share = f"share of {self.chosen_class} "
            out.append(prevalence_expectation(self.label, prevalence, check_meta, share))
        return out

    def fit_calibration(
        self,
        method: str,
        fit_logits: np.ndarray,
        fit_y: np.ndarray,
        select_logits: np.ndarray,
        select_y: np.ndarray,
    ) -> tuple[dict[str, Any], dict[str, float]]:
        """Temperature, vector scaling or none (`multiclass_calibration.fit_and_select`)."""
        return multiclass_calibration.fit_and_select(method, fit_logits, fit_y, select_logits, select_y)

    def calibration_measures(
        self, probabilities: np.ndarray, targets: np.ndarray, bins: int
    ) -> dict[str, float]:
        """NLL, Brier, top-label ECE and MCE, classwise ECE."""
        return multiclass_calibration.summary(probabilities, targets, bins)

    def reliability(self, probabilities: np.ndarray, targets: np.ndarray, bins: int) -> dict[str, list[Any]]:
        """Top-label: mean top probability against accuracy."""
        return multiclass_calibration.reliability(probabilities, targets, bins)

    def describe_calibration(self, record: Mapping[str, Any]) -> str:
        """'temperature T=1.830', 'vector scaling (K classes)' or 'none'."""
        params = record.get("params", {})
        if record["method"] == "temperature":
            return f"temperature T={params['temperature']:.3f}"
        if record["method"] == "vector":
            return f"vector scaling ({len(params['a'])} classes)"
        return str(record["method"])

    def folds_into_graph(self, record: Mapping[str, Any]) -> bool:
        """None: serving applies every multi-class map from calibration.json."""
        return False

    @property
    def reliability_axes(self) -> tuple[str, str]:
        """Top-label probability against accuracy."""
        return ("top-label probability", "accuracy (top label is right)")

    def serving_graph(self, onnx_model: bytes, record: Mapping[str, Any]) -> bytes:
        """Unchanged: serving applies the map from calibration.json."""
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
        """argmax, or the class of interest's threshold where its validation recall reaches the
        target (the highest such threshold, as the binary operating point); rates per class."""
        from components.common.tasks.operating_point import threshold_for_recall, wilson

        chosen: str | None = None
        value: float | None = None
        if target_recall is not None:
            chosen = str(getattr(target_recall, "class_", None) or self.chosen_class)
            value = float(getattr(target_recall, "value", target_recall))
            if chosen not in self.classes:
                raise ValueError(
                    f"calibration.target_recall names class {chosen!r}; the classes are {self.classes}"
                )
        name, p, y = chosen_on
        point: dict[str, Any] = {"class": None, "threshold": None, "target": None}
        if chosen is not None and value is not None:
            c = self.classes.index(chosen)
            threshold = threshold_for_recall(p[:, c], (y == c).astype(int), value)
            point = {"class": chosen, "threshold": threshold, "target": {"recall": value, "class": chosen}}

        def rates(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
            decided = self.decide(probabilities, point)
            out: dict[str, Any] = {}
            for c, label in enumerate(self.classes):
                hits, support = int(np.sum((decided == c) & (targets == c))), int(np.sum(targets == c))
                out[f"recall_{label}"] = hits / support if support else float("nan")
                out[f"recall_{label}_interval"] = list(wilson(hits, support, level))
            return out

        held_name, held_p, held_y = measured_on
        return {
            **point,
            "chosen_on": name,
            "confidence": level,
            "rates": {name: rates(p, y), held_name: rates(held_p, held_y)},
        }

    def prediction_columns(
        self, logits: np.ndarray, probabilities: np.ndarray, decisions: np.ndarray
    ) -> dict[str, np.ndarray]:
        """logit_<class> and probability_<class> per class, and the decided class's name."""
        columns: dict[str, np.ndarray] = {}
        for c, name in enumerate(self.classes):
            columns[f"logit_{name}"] = logits[:, c]
        for c, name in enumerate(self.classes):
            columns[f"probability_{name}"] = probabilities[:, c]
        columns["decision"] = np.asarray(self.classes, dtype=object)[np.asarray(decisions, dtype=np.int64)]
        return columns

    def logits_from_columns(self, frame: pd.DataFrame) -> np.ndarray:
        """The logit_<class> columns in class order."""
        return frame[[f"logit_{name}" for name in self.classes]].to_numpy(dtype=np.float64)

    def answer_columns(self, probabilities: np.ndarray, decisions: np.ndarray) -> dict[str, np.ndarray]:
        """probability_<class> per class, and the decided class's index."""
        columns = {f"probability_{name}": probabilities[:, c] for c, name in enumerate(self.classes)}
        return {**columns, "decision": np.asarray(decisions, dtype=np.int64)}

    def serving_head(self, record: Mapping[str, Any]) -> ServingHead:
        """`MulticlassHead`: a probability per class and the decided class."""
        from components.common.tasks.serving import MulticlassHead

        return MulticlassHead(record, self)

    def served_metrics(self, targets: np.ndarray, answers: pd.DataFrame) -> dict[str, float]:
        """Every multi-class metric of the served probabilities (probability_<class>) and
        decisions (class indices), on the rows whose label is one of the classes."""
        from components.common.tasks.multiclass_metrics import MulticlassScores

        y = np.asarray(targets)
        known = y >= 0
        p = answers[[f"probability_{c}" for c in self.classes]].to_numpy(np.float64)[known]
        decisions = answers["decision"].to_numpy(np.int64)[known]
        return MulticlassScores(y[known], p, decisions, self.classes).point()

    def labeled_positives(self, targets: np.ndarray) -> int:
        """Rows of the rarest class."""
        y = np.asarray(targets)
        return int(np.bincount(y[y >= 0], minlength=self.n_outputs).min()) if len(y) else 0

    @property
    def answer_names(self) -> tuple[str, ...]:
        """probability_<class> per class."""
        return tuple(f"probability_{c}" for c in self.classes)

    def ranking_score(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        """Macro one-vs-rest ROC AUC (NaN when a class has no row or every row)."""
        from components.common.tasks.ranking import roc_auc

        y, p = np.asarray(targets), np.asarray(probabilities, dtype=np.float64)
        return float(np.mean([roc_auc(y == c, p[:, c]) for c in range(self.n_outputs)]))

    def quality_influence(
        self, metric: str, targets: np.ndarray, probabilities: np.ndarray, decisions: np.ndarray
    ) -> tuple[float, np.ndarray, str]:
        """Macro one-vs-rest ROC AUC, or the recall of the class of interest (macro recall
        without one), per row: a mean of per-class values has the mean of their influences."""
        from components.common.tasks.ranking import auc_influence, rate_influence

        y, d = np.asarray(targets), np.asarray(decisions)
        if metric == "recall":
            if self.chosen_class in self.classes:
                c = self.classes.index(self.chosen_class)
                return (*rate_influence(d == c, y == c), f"recall of {self.chosen_class}")
            parts = [rate_influence(d == c, y == c) for c in range(self.n_outputs)]
            what = "macro recall"
        else:
            p = np.asarray(probabilities, dtype=np.float64).reshape(len(y), self.n_outputs)
            parts = [auc_influence(y == c, p[:, c]) for c in range(self.n_outputs)]
            what = "macro ROC AUC"
        value = float(np.mean([v for v, _ in parts]))
        return value, np.mean([i for _, i in parts], axis=0), what

    def floor_rates(self, targets: np.ndarray, decisions: np.ndarray) -> dict[str, tuple[float, int, str]]:
        """One-vs-rest recall and specificity of the class of interest; without one (or one
        outside the classes), their macro averages over the classes present."""
        from components.common.tasks.ranking import share

        y, d = np.asarray(targets), np.asarray(decisions)
        if self.chosen_class in self.classes:
            c = self.classes.index(self.chosen_class)
            return {
                "recall": (
                    share(d[y == c] == c),
                    int(np.sum(y == c)),
                    f"recall of {self.chosen_class}",
                ),
                "specificity": (
                    share(d[y != c] != c),
                    int(np.sum(y != c)),
                    f"specificity of {self.chosen_class}",
                ),
            }
        present = [c for c in range(self.n_outputs) if np.any(y == c)]
        recall = np.mean([np.mean(d[y == c] == c) for c in present])
        specificity = np.mean([np.mean(d[y != c] != c) for c in present if np.any(y != c)])
        return {
            "recall": (float(recall), len(y), "macro recall"),
            "specificity": (float(specificity), len(y), "macro specificity"),
        }

    def for_point(self, point: Mapping[str, Any]) -> MulticlassTask:
        """With the class the operating point thresholds as the class of interest, if it has one."""
        chosen = point.get("class")
        if chosen is None or str(chosen) == self.chosen_class:
            return self
        return MulticlassTask(self.label, str(chosen), self.classes or None)

    def needs_positives(self, metric: str) -> bool:
        """Every metric but accuracy, top-2 accuracy, log loss and Brier needs rows of each class."""
        return metric not in ("accuracy", "top_2_accuracy", "log_loss", "brier")

    @property
    def default_decay(self) -> dict[str, float]:
        """Macro ROC AUC 0.05, macro recall 0.1."""
        return {"roc_auc": 0.05, "macro_recall": 0.1}

    def output_array(self, output: np.ndarray) -> np.ndarray:
        """One row of K values per row: (n, K)."""
        return np.asarray(output, dtype=np.float64).reshape(-1, self.n_outputs)

    def from_class_columns(self, matrix: np.ndarray) -> np.ndarray:
        """The matrix itself, (n, K)."""
        return np.asarray(matrix, dtype=np.float64).reshape(-1, self.n_outputs)

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

    def confidence(self, probabilities: np.ndarray, decisions: np.ndarray) -> np.ndarray:
        """The probability of the decided class."""
        p = np.asarray(probabilities, dtype=np.float64)
        return p[np.arange(len(p)), np.asarray(decisions, dtype=np.int64)]

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The whole-table metrics, then `<metric>_<class>` per class."""
        return (*SUMMARY_METRICS, *per_class_names(self.classes))

    @property
    def gated_metrics(self) -> tuple[str, ...]:
        """Every metric but log loss and Brier."""
        return tuple(m for m in self.metric_names if m not in ("log_loss", "brier"))

    def knows_metric(self, name: str) -> bool:
        """A gated metric; before the classes are known, any `<per-class metric>_<class>` too."""
        if name in self.gated_metrics:
            return True
        prefixes = tuple(f"{m}_" for m in PER_CLASS_METRICS)
        return not self.classes and name.startswith(prefixes)

    @property
    def calibration_methods(self) -> tuple[str, ...]:
        """Temperature, vector scaling, or none."""
        return multiclass_calibration.METHODS

    @property
    def operating_targets(self) -> tuple[str, ...]:
        """A recall for one class."""
        return ("recall", "class")

    @property
    def headline_metrics(self) -> tuple[str, ...]:
        """Accuracy, balanced accuracy, macro F1 and macro one-vs-rest ROC-AUC."""
        return ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")

    @property
    def slice_metrics(self) -> tuple[str, ...]:
        """Accuracy, macro recall, macro F1, macro ROC-AUC."""
        return ("accuracy", "macro_recall", "macro_f1", "roc_auc")

    def scores(self, targets: np.ndarray, probabilities: np.ndarray, point: Mapping[str, Any]) -> Scores:
        """`MulticlassScores` of the decisions at `point`."""
        from components.common.tasks.multiclass_metrics import MulticlassScores

        return MulticlassScores(targets, probabilities, self.decide(probabilities, point), self.classes)

    def slice_counts(self, targets: np.ndarray) -> dict[str, int]:
        """How many classes the slice holds."""
        return {"classes": int(len(np.unique(targets)))}

    def errors(self, targets: np.ndarray, decisions: np.ndarray) -> dict[str, np.ndarray]:
        """'<true> called <decided>' for every pair of different classes."""
        y, d = np.asarray(targets), np.asarray(decisions)
        return {
            f"{self.classes[a]} called {self.classes[b]}": (y == a) & (d == b)
            for a in range(self.n_outputs)
            for b in range(self.n_outputs)
            if a != b
        }

    def baseline_point(
        self, probabilities: np.ndarray, targets: np.ndarray, model_metrics: Mapping[str, float]
    ) -> tuple[dict[str, Any], str]:
        """argmax: the baseline's probabilities are not calibrated, so no threshold transfers."""
        return {}, "it decides its most probable class"

    @property
    def baseline_metrics(self) -> tuple[str, ...]:
        """Macro ROC-AUC and PR-AUC, accuracy, balanced accuracy, macro F1, macro recall."""
        return ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "macro_f1", "macro_recall")

    def describe_point(self, point: Mapping[str, Any]) -> str:
        """'argmax', or the class-of-interest rule."""
        if point.get("class") is None:
            return "argmax decisions (the most probable class)"
        return (
            f"{point['class']} where its probability >= {float(point['threshold']):.4g}, "
            "else the most probable other class"
        )

    def curves(self, targets: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
        """One-vs-rest ROC per class, thinned to 200 points each."""
        from components.common.tasks.binary_metrics import roc_points

        y = np.asarray(targets)
        return {
            "roc_per_class": {
                name: roc_points((y == c).astype(int), probabilities[:, c])
                for c, name in enumerate(self.classes)
            }
        }
