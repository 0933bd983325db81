"""How well probabilities are calibrated: NLL, Brier, ECE and MCE, and reliability curves.

ECE and MCE use equal-width bins of the positive-class probability over [0, 1], right-closed
as in scikit-learn's `calibration_curve(strategy="uniform")`: ECE is the row-weighted mean gap
between mean predicted probability and observed positive rate (Guo et al. 2017 use 15 bins),
MCE the largest gap over the non-empty bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_EPS = 1e-7  # isotonic maps can reach exactly 0 or 1; NLL needs a finite penalty there


def nll(p: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of 0/1 labels under probabilities p."""
    q = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def logit_nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean NLL of labels under sigmoid(logit / T), computed stably on the logit."""
    z = logits / temperature
    # log(1 + e^-z) for positives, log(1 + e^z) for negatives.
    return float(np.mean(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)))


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, list[Any]]:
    """Mean predicted probability, observed positive rate and rows per non-empty bin."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], p)  # right-closed bins, as calibration_curve
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
    filled = counts > 0
    return {
        "predicted": (predicted[filled] / counts[filled]).tolist(),
        "observed": (observed[filled] / counts[filled]).tolist(),
        "count": counts[filled].astype(int).tolist(),
    }


def ece_mce(p: np.ndarray, y: np.ndarray, bins: int = 15) -> tuple[float, float]:
    """Expected and maximum calibration error over equal-width bins."""
    curve = reliability(p, y, bins)
    gaps = np.abs(np.asarray(curve["predicted"]) - np.asarray(curve["observed"]))
    if len(gaps) == 0:
        return 0.0, 0.0
    weights = np.asarray(curve["count"]) / len(p)
    return float(np.sum(weights * gaps)), float(gaps.max())


def summary(p: np.ndarray, y: np.ndarray, bins: int) -> dict[str, float]:
    """NLL, Brier, ECE and MCE of probabilities p."""
    expected, worst = ece_mce(p, y, bins)
    return {"nll": nll(p, y), "brier": float(np.mean((p - y) ** 2)), "ece": expected, "mce": worst}
