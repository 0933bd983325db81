"""Temperature scaling (Guo et al. 2017) and calibration measures for a binary classifier."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from components.common.scoring import sigmoid


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of labels under sigmoid(logit / T)."""
    z = logits / temperature
    # log(1 + e^-z) for positives, log(1 + e^z) for negatives, computed stably.
    return float(np.mean(np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising NLL on the calibration split (searched over log T)."""
    result = minimize_scalar(
        lambda log_t: nll(logits, y, float(np.exp(log_t))),
        bounds=(-4.0, 4.0),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


def ece(p: np.ndarray, y: np.ndarray, bins: int = 15) -> tuple[float, float]:
    """Expected and maximum calibration error with equal-width confidence bins (top label)."""
    confidence = np.maximum(p, 1 - p)
    correct = ((p >= 0.5).astype(int) == y).astype(float)
    edges = np.linspace(0.5, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    expected, worst = 0.0, 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            gap = abs(correct[mask].mean() - confidence[mask].mean())
            expected += mask.mean() * gap
            worst = max(worst, gap)
    return float(expected), float(worst)


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, list[Any]]:
    """Mean predicted probability vs observed positive rate per equal-width bin (for plots)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=True), 0, bins - 1)
    predicted, observed, counts = [], [], []
    for b in range(bins):
        mask = index == b
        if mask.any():
            predicted.append(float(p[mask].mean()))
            observed.append(float(y[mask].mean()))
            counts.append(int(mask.sum()))
    return {"predicted": predicted, "observed": observed, "count": counts}


def summary(logits: np.ndarray, y: np.ndarray, temperature: float, bins: int) -> dict[str, float]:
    """NLL, Brier, ECE and MCE of sigmoid(logit / T)."""
    p = sigmoid(logits / temperature)
    expected, worst = ece(p, y, bins)
    return {
        "nll": nll(logits, y, temperature),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected,
        "mce": worst,
    }
