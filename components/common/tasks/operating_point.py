"""The operating point: the threshold on calibrated probabilities that meets a target."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import norm


def wilson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (sound near 0 and 1, unlike the Wald one)."""
    if trials == 0:
        return float("nan"), float("nan")
    z = float(norm.ppf(0.5 + level / 2))
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def threshold_for_recall(p: np.ndarray, y: np.ndarray, target: float) -> float:
    """The highest threshold whose recall (share of positives with p >= t) reaches `target`.

    The highest such threshold calls the fewest negatives positive, so it has the best
    specificity among those that meet the recall target.
    """
    scores = np.sort(p[y == 1])[::-1]
    if len(scores) == 0:
        raise ValueError("no positives to set a recall target on; the split needs positive rows")
    needed = max(1, math.ceil(target * len(scores) - 1e-9))
    return float(scores[needed - 1])


def threshold_for_specificity(p: np.ndarray, y: np.ndarray, target: float) -> float:
    """The lowest threshold whose specificity (share of negatives with p < t) reaches `target`."""
    scores = np.sort(p[y == 0])
    if len(scores) == 0:
        raise ValueError("no negatives to set a specificity target on; the split needs negative rows")
    needed = math.ceil(target * len(scores) - 1e-9)
    if needed == 0:
        return float(np.nextafter(scores[0], -np.inf))
    # Just above the needed-th lowest negative: it and every lower negative fall below t.
    return float(np.nextafter(scores[needed - 1], np.inf))


def rates(p: np.ndarray, y: np.ndarray, threshold: float, level: float) -> dict[str, Any]:
    """Recall and specificity at `threshold`, each with its Wilson interval."""
    called = p >= threshold
    tp, positives = int(np.sum(called & (y == 1))), int(np.sum(y == 1))
    tn, negatives = int(np.sum(~called & (y == 0))), int(np.sum(y == 0))
    return {
        "recall": tp / positives if positives else float("nan"),
        "recall_interval": list(wilson(tp, positives, level)),
        "specificity": tn / negatives if negatives else float("nan"),
        "specificity_interval": list(wilson(tn, negatives, level)),
        "positives": positives,
        "negatives": negatives,
    }


def choose(
    p: np.ndarray,
    y: np.ndarray,
    target_recall: float | None,
    target_specificity: float | None,
    fixed_threshold: float,
) -> tuple[float, dict[str, float] | None]:
    """The threshold for the configured target, or `fixed_threshold` when none is set."""
    if target_recall is not None:
        return threshold_for_recall(p, y, target_recall), {"recall": target_recall}
    if target_specificity is not None:
        return threshold_for_specificity(p, y, target_specificity), {"specificity": target_specificity}
    return fixed_threshold, None


def operating_point(
    chosen_on: tuple[str, np.ndarray, np.ndarray],
    measured_on: tuple[str, np.ndarray, np.ndarray],
    target_recall: float | None,
    target_specificity: float | None,
    fixed_threshold: float,
    level: float = 0.95,
) -> dict[str, Any]:
    """The operating-point record: threshold, target, and the rates where chosen and on held-out rows.

    Args:
        chosen_on: (split name, calibrated probabilities, labels) the threshold is set on.
        measured_on: (split name, probabilities, labels) held out from the choice.
        target_recall: Recall to reach, or None.
        target_specificity: Specificity to reach, or None (ignored when target_recall is set).
        fixed_threshold: The threshold when no target is set.
        level: Coverage of the Wilson intervals.
    """
    name, p, y = chosen_on
    threshold, target = choose(p, y, target_recall, target_specificity, fixed_threshold)
    held_name, held_p, held_y = measured_on
    return {
        "threshold": threshold,
        "target": target,
        "chosen_on": name,
        "confidence": level,
        "rates": {name: rates(p, y, threshold, level), held_name: rates(held_p, held_y, threshold, level)},
    }
