"""Calibration maps for K-class logits, their fits, and the multi-class calibration measures.

Maps (a record's `method` and `params`, as the binary maps in `components.common.calibration`):

- `temperature`: p = softmax(z / T) (Guo et al. 2017): one parameter, argmax unchanged.
- `vector`: p = softmax(a * z + b), a and b one per class (Guo et al. 2017's vector scaling).
- `none`: p = softmax(z).

Measures: top-label ECE and MCE (equal-width bins of the top probability, 15 by default),
classwise ECE (Kull et al. 2019: the mean over classes of each class's ECE), the multi-class
Brier score (mean over rows of the squared distance to the one-hot label) and NLL.

numpy at import time (serving applies the maps); scipy only inside the fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

METHODS = ("temperature", "vector", "none")
"""Every multi-class map a record can hold."""

FITTED = ("temperature", "vector")
"""The maps `auto` fits; it also keeps `none` when that has the lowest validation NLL."""

_EPS = 1e-15


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = np.asarray(z, dtype=np.float64) - np.max(z, axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax."""
    shifted = np.asarray(z, dtype=np.float64) - np.max(z, axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def scaled_logits(record: Mapping[str, Any], logits: np.ndarray) -> np.ndarray:
    """The logits after the record's map, before the softmax.

    Raises:
        ValueError: Unknown method, missing parameters, or parameters for another class count.
    """
    z = np.asarray(logits, dtype=np.float64)
    method, params = record.get("method"), record.get("params", {})
    try:
        if method == "temperature":
            return z / float(params["temperature"])
        if method == "vector":
            a, b = np.asarray(params["a"], float), np.asarray(params["b"], float)
            if a.shape != (z.shape[1],) or b.shape != (z.shape[1],):
                raise ValueError(f"vector scaling has {a.shape[0]} classes; the logits have {z.shape[1]}")
            return z * a + b
        if method == "none":
            return z
    except KeyError as exc:
        raise ValueError(f"calibration record for {method!r} lacks parameter {exc}") from exc
    raise ValueError(
        f"unknown multi-class calibration method {method!r}; expected one of {', '.join(METHODS)}"
    )


def apply(record: Mapping[str, Any], logits: np.ndarray) -> np.ndarray:
    """Calibrated probabilities (n, K) of K-class logits under a record."""
    return softmax(scaled_logits(record, logits))


def nll(p: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of class indices `y` under probabilities `p` (n, K)."""
    picked = np.clip(p[np.arange(len(y)), y], _EPS, 1.0)
    return float(-np.mean(np.log(picked)))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising NLL of softmax(z / T) (searched over log T in [-4, 4])."""
    from scipy.optimize import minimize_scalar

    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        return float(-np.mean(log_softmax(logits / np.exp(log_t))[rows, y]))

    result = minimize_scalar(loss, bounds=(-4.0, 4.0), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def fit_vector(logits: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """(a, b) of softmax(a * z + b) minimising NLL, from a = 1, b = 0 (L-BFGS with the gradient)."""
    from scipy.optimize import minimize

    n, k = logits.shape
    onehot = np.eye(k)[y]

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta[:k], theta[k:]
        logp = log_softmax(logits * a + b)
        residual = np.exp(logp) - onehot  # d(NLL)/d(scaled logit), per row
        grad_a = (residual * logits).sum(axis=0) / n
        grad_b = residual.sum(axis=0) / n
        return float(-np.mean(logp[np.arange(n), y])), np.concatenate([grad_a, grad_b])

    start = np.concatenate([np.ones(k), np.zeros(k)])
    result = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B")
    return result.x[:k].tolist(), result.x[k:].tolist()


def fit(method: str, logits: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """`{"method", "params"}` of one map fitted on (logits (n, K), class indices)."""
    if method == "temperature":
        return {"method": method, "params": {"temperature": fit_temperature(logits, y)}}
    if method == "vector":
        a, b = fit_vector(logits, y)
        return {"method": method, "params": {"a": a, "b": b}}
    if method == "none":
        return {"method": "none", "params": {}}
    raise ValueError(
        f"calibration.method {method!r} does not apply to multi-class labels; use temperature, vector, "
        "none or auto"
    )


def fit_and_select(
    method: str, fit_logits: np.ndarray, fit_y: np.ndarray, select_logits: np.ndarray, select_y: np.ndarray
) -> tuple[dict[str, Any], dict[str, float]]:
    """Fit `method` (`auto`: every fitted map and the identity) and keep the lowest selection NLL.

    Returns:
        The chosen record and each candidate's NLL on the selection split (`none` always
        listed; with `auto` it is a candidate, so calibration never worsens validation NLL).
    """
    candidates = (*FITTED, "none") if method == "auto" else (method,)
    fitted = {name: fit(name, fit_logits, fit_y) for name in candidates}
    fitted.setdefault("none", fit("none", fit_logits, fit_y))
    scores = {name: nll(apply(record, select_logits), select_y) for name, record in fitted.items()}
    best = min(candidates, key=lambda name: scores[name])
    return fitted[best], scores


def _bins(confidence: np.ndarray, correct: np.ndarray, bins: int) -> tuple[np.ndarray, ...]:
    """(mean confidence, share correct, rows) of every non-empty equal-width bin, right-closed
    as scikit-learn's calibration_curve."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], confidence)
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=confidence, minlength=bins)
    observed = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    filled = counts > 0
    return predicted[filled] / counts[filled], observed[filled] / counts[filled], counts[filled]


def _gaps(confidence: np.ndarray, correct: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(|confidence - accuracy|, row share) of every non-empty bin."""
    predicted, observed, counts = _bins(confidence, correct, bins)
    return np.abs(predicted - observed), counts / max(len(confidence), 1)


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, list[Any]]:
    """Top-label reliability: mean top probability, accuracy and rows per non-empty bin."""
    predicted, observed, counts = _bins(p.max(axis=1), p.argmax(axis=1) == y, bins)
    return {
        "predicted": predicted.tolist(),
        "observed": observed.tolist(),
        "count": counts.astype(int).tolist(),
    }


def summary(p: np.ndarray, y: np.ndarray, bins: int) -> dict[str, float]:
    """NLL, multi-class Brier, top-label ECE and MCE, and classwise ECE of probabilities p."""
    gaps, share = _gaps(p.max(axis=1), p.argmax(axis=1) == y, bins)
    classwise = [float(np.sum(g * s)) for g, s in (_gaps(p[:, c], y == c, bins) for c in range(p.shape[1]))]
    onehot = np.eye(p.shape[1])[y]
    return {
        "nll": nll(p, y),
        "brier": float(np.mean(((p - onehot) ** 2).sum(axis=1))),
        "ece": float(np.sum(gaps * share)),
        "mce": float(gaps.max()) if len(gaps) else 0.0,
        "classwise_ece": float(np.mean(classwise)),
    }
