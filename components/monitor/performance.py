"""Performance decay: metrics on served rows whose labels arrived, against the model card's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from components.common.tasks import Task

NEEDS_POSITIVES = {"recall", "roc_auc", "pr_auc"}


@dataclass
class MetricDecay:
    """One metric served against the card."""

    metric: str
    card: float
    served: float
    drop: float
    max_drop: float
    decayed: bool


@dataclass
class PerformanceVerdict:
    """Performance on the labeled served rows of the version checked."""

    labeled_rows: int
    positives: int
    metrics: list[MetricDecay] = field(default_factory=list)
    too_small: str = ""

    @property
    def decayed(self) -> bool:
        """True when any judged metric fell further than allowed."""
        return any(m.decayed for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "decayed": self.decayed}


def served_metrics(labels: np.ndarray, probability: np.ndarray, decision: np.ndarray) -> dict[str, float]:
    """recall, precision, ROC AUC and PR AUC of served answers (labels: True for positive)."""
    positives, predicted = int(labels.sum()), int(decision.sum())
    hits = int((labels & decision).sum())
    both_classes = 0 < positives < len(labels)
    return {
        "recall": hits / positives if positives else float("nan"),
        "precision": hits / predicted if predicted else float("nan"),
        "roc_auc": float(roc_auc_score(labels, probability)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(labels, probability)) if both_classes else float("nan"),
    }


def check_performance(
    joined: pd.DataFrame,
    card: dict[str, Any],
    task: Task,
    max_drop: dict[str, float],
    min_labeled: int,
    min_positives: int,
) -> PerformanceVerdict:
    """Decay of each metric in `max_drop` on `joined` (label, probability, decision per row).

    A window with fewer than `min_labeled` rows gets no verdict; with fewer than
    `min_positives` positives, the metrics that need positives are not judged (one missed
    case among three is not a recall of 0.67 anyone should act on).
    """
    labels = task.targets(joined["label"]).astype(bool) if len(joined) else np.zeros(0, dtype=bool)
    verdict = PerformanceVerdict(labeled_rows=len(joined), positives=int(labels.sum()))
    if len(joined) < min_labeled:
        verdict.too_small = f"{len(joined)} labeled rows; a performance verdict needs at least {min_labeled}"
        return verdict
    served = served_metrics(
        labels, joined["probability"].to_numpy(np.float64), joined["decision"].to_numpy(np.int64).astype(bool)
    )
    for metric, allowed in sorted(max_drop.items()):
        if metric in NEEDS_POSITIVES and verdict.positives < min_positives:
            continue
        if metric not in card or np.isnan(served[metric]):
            continue
        drop = float(card[metric]) - served[metric]
        verdict.metrics.append(
            MetricDecay(
                metric, float(card[metric]), round(served[metric], 6), round(drop, 6), allowed, drop > allowed
            )
        )
    if not verdict.metrics and verdict.positives < min_positives:
        verdict.too_small = (
            f"{verdict.positives} positive labels; recall and ROC AUC need at least {min_positives}"
        )
    return verdict
