"""Performance decay: metrics on served rows whose labels arrived, against the model card's."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from components.common.tasks import Task


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


def check_performance(
    joined: pd.DataFrame,
    card: dict[str, Any],
    task: Task,
    max_drop: dict[str, float],
    min_labeled: int,
    min_positives: int,
) -> PerformanceVerdict:
    """Decay of each metric in `max_drop` on `joined` (label, the answer columns and decision
    per row; `Task.served_metrics` reads them).

    A window with fewer than `min_labeled` rows gets no verdict; with fewer than
    `min_positives` positives (multi-class: rows of the rarest class), the metrics that need
    them are not judged (one missed case among three is not a recall of 0.67 anyone should
    act on).
    """
    targets = task.targets(joined["label"]) if len(joined) else np.zeros(0, dtype=np.int64)
    verdict = PerformanceVerdict(labeled_rows=len(joined), positives=task.labeled_positives(targets))
    if len(joined) < min_labeled:
        verdict.too_small = f"{len(joined)} labeled rows; a performance verdict needs at least {min_labeled}"
        return verdict
    served = task.served_metrics(targets, joined)
    for metric, allowed in sorted(max_drop.items()):
        if task.needs_positives(metric) and verdict.positives < min_positives:
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
