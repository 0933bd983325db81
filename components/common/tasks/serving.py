"""What the Seldon model class answers for each task: the serving head (numpy only).

The head turns one ONNX run's outputs into one answer per row (binary: the calibrated
probability; multi-class: a probability per class) and a decision, and writes those answers
into the response's ndarray rows, its jsonData objects and the request log. Python lists after
calibration: each numpy call on a single row costs microseconds the request pays.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from components.common import calibration
from components.common.tasks import multiclass_calibration

if TYPE_CHECKING:
    from components.common.tasks.multiclass import MulticlassTask


class NonFiniteAnswer(ValueError):
    """The model gave a NaN or an infinite probability; never served (the caller gets a 500)."""


class ServingHead(ABC):
    """Answers and decisions of one registered version, from its calibration record."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        """A head for the version whose calibration.json is `record`."""
        self.record = record
        self.point = dict(record["operating_point"])

    @property
    @abstractmethod
    def names(self) -> list[str]:
        """Column names of an ndarray response row."""

    @abstractmethod
    def answer(self, outputs: Mapping[str, np.ndarray]) -> tuple[list[Any], list[int]]:
        """(answer, decision) per row; raises NonFiniteAnswer rather than serve a NaN."""

    @abstractmethod
    def row(self, answer: Any, decision: int) -> list[float]:
        """One ndarray response row."""

    @abstractmethod
    def named(self, answer: Any, decision: int) -> dict[str, Any]:
        """One jsonData prediction."""

    @abstractmethod
    def log_fields(self, answer: Any, decision: int) -> str:
        """The answer's fields of one request-log JSON line (a fragment, no braces)."""

    @abstractmethod
    def tags(self) -> dict[str, Any]:
        """What every response's meta.tags says of the decision rule."""

    @abstractmethod
    def flagged(self, decisions: list[int]) -> int:
        """Rows decided for the class of interest (the metrics' positive decisions)."""


def _check_finite(values: list[float]) -> None:
    if not all(map(math.isfinite, values)):
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        raise NonFiniteAnswer(f"the model returned a non-finite probability for value(s) {bad[:10]}")


class BinaryHead(ServingHead):
    """probability and decision (1 at or above the operating threshold)."""

    def __init__(self, record: Mapping[str, Any]) -> None:
        """The threshold comes from the record's operating point."""
        super().__init__(record)
        self.threshold = float(self.point["threshold"])

    @property
    def names(self) -> list[str]:
        """probability, decision."""
        return ["probability", "decision"]

    def answer(self, outputs: Mapping[str, np.ndarray]) -> tuple[list[Any], list[int]]:
        """The calibrated probability of every row, and its decision at the threshold."""
        probability = calibration.probabilities(self.record, outputs).tolist()
        _check_finite(probability)
        threshold = self.threshold
        return probability, [1 if p >= threshold else 0 for p in probability]

    def row(self, answer: Any, decision: int) -> list[float]:
        """[probability, decision]."""
        return [answer, float(decision)]

    def named(self, answer: Any, decision: int) -> dict[str, Any]:
        """{"probability", "decision"}."""
        return {"probability": answer, "decision": decision}

    def log_fields(self, answer: Any, decision: int) -> str:
        """ "probability":p,"decision":d."""
        return f'"probability":{answer!r},"decision":{decision}'

    def tags(self) -> dict[str, Any]:
        """The threshold."""
        return {"threshold": self.threshold}

    def flagged(self, decisions: list[int]) -> int:
        """Positive decisions."""
        return sum(decisions)


class MulticlassHead(ServingHead):
    """A probability per class, in `classes` order, and the decided class."""

    def __init__(self, record: Mapping[str, Any], task: MulticlassTask) -> None:
        """The decision rule (argmax, or a class-of-interest threshold) from the operating point."""
        super().__init__(record)
        self.task = task
        self.classes = list(task.classes)
        chosen = self.point.get("class")
        self.chosen = None if chosen is None else self.classes.index(str(chosen))
        self.threshold = None if chosen is None else float(self.point["threshold"])
        self._keys = [json.dumps(f"probability_{c}") + ":" for c in self.classes]

    @property
    def names(self) -> list[str]:
        """probability_<class> for every class, then decision (the class's index)."""
        return [f"probability_{c}" for c in self.classes] + ["decision"]

    def answer(self, outputs: Mapping[str, np.ndarray]) -> tuple[list[Any], list[int]]:
        """Calibrated probabilities per row and the decided class index."""
        logits = np.asarray(outputs["logit"], dtype=np.float64).reshape(-1, len(self.classes))
        p = multiclass_calibration.apply(self.record, logits)
        rows = p.tolist()
        _check_finite([v for r in rows for v in r])
        if self.chosen is None:
            decisions = p.argmax(axis=1).tolist()
        else:
            others = p.copy()
            others[:, self.chosen] = -np.inf
            decisions = np.where(
                p[:, self.chosen] >= self.threshold, self.chosen, others.argmax(axis=1)
            ).tolist()
        return rows, decisions

    def row(self, answer: Any, decision: int) -> list[float]:
        """[p_1, ..., p_K, decision index]."""
        return [*answer, float(decision)]

    def named(self, answer: Any, decision: int) -> dict[str, Any]:
        """{"probabilities": {class: p}, "decision": class name}."""
        return {
            "probabilities": dict(zip(self.classes, answer, strict=True)),
            "decision": self.classes[decision],
        }

    def log_fields(self, answer: Any, decision: int) -> str:
        """`"probability_<class>":p` per class, and `"decision":` the class index."""
        parts = ",".join(key + repr(p) for key, p in zip(self._keys, answer, strict=True))
        return f'{parts},"decision":{decision}'

    def tags(self) -> dict[str, Any]:
        """The decision rule: argmax, or the class of interest and its threshold."""
        if self.chosen is None:
            return {"decision_rule": "argmax"}
        return {
            "decision_rule": "class_threshold",
            "class": self.classes[self.chosen],
            "threshold": self.threshold,
        }

    def flagged(self, decisions: list[int]) -> int:
        """Decisions for the class of interest (none without one)."""
        if self.chosen is None:
            return 0
        return sum(1 for d in decisions if d == self.chosen)
