"""Fitting calibration maps on the calibration split, and `auto` selection by validation NLL."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from components.common import calibration
from components.common.tasks.binary_measures import logit_nll, nll

FITTED_METHODS = ("temperature", "platt", "isotonic")


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising NLL (searched over log T in [-4, 4])."""
    result = minimize_scalar(
        lambda log_t: logit_nll(logits, y, float(np.exp(log_t))),
        bounds=(-4.0, 4.0),
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) of sigmoid(a * logit + b), fitted on Platt's smoothed targets.

    Platt (1999) replaces the 0/1 targets by 1/(N- + 2) and (N+ + 1)/(N+ + 2) so a
    separable calibration split does not drive the slope to infinity.
    """
    positives = float(np.sum(y))
    negatives = float(len(y) - positives)
    target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss_and_grad(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * logits + ab[1]
        loss = np.mean(target * np.logaddexp(0.0, -z) + (1 - target) * np.logaddexp(0.0, z))
        residual = calibration.sigmoid(z) - target
        return float(loss), np.array([np.mean(residual * logits), np.mean(residual)])

    result = minimize(loss_and_grad, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def fit_isotonic(logits: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Knots (x on the logit, y probability) of a non-decreasing step fit, clipped at the ends."""
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(logits, y)
    return model.X_thresholds_.tolist(), model.y_thresholds_.tolist()


def fit(method: str, logits: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """`{"method", "params"}` of one map fitted on (logits, y)."""
    if method == "temperature":
        return {"method": method, "params": {"temperature": fit_temperature(logits, y)}}
    if method == "platt":
        a, b = fit_platt(logits, y)
        return {"method": method, "params": {"a": a, "b": b}}
    if method == "isotonic":
        xs, ys = fit_isotonic(logits, y)
        return {"method": method, "params": {"x": xs, "y": ys}}
    if method == "none":
        return {"method": "none", "params": {}}
    raise ValueError(f"unknown calibration method {method!r}; use one of {', '.join(FITTED_METHODS)}, auto")


def fit_and_select(
    method: str,
    fit_logits: np.ndarray,
    fit_y: np.ndarray,
    select_logits: np.ndarray,
    select_y: np.ndarray,
) -> tuple[dict[str, Any], dict[str, float]]:
    """Fit `method` (for `auto` every method and the identity) and keep the lowest NLL on the
    selection split, so `auto` never leaves validation NLL worse than the model's own.

    Returns:
        The chosen `{"method", "params"}` and each candidate's NLL on the selection split
        (the uncalibrated model always included, as `none`).
    """
    candidates = (*FITTED_METHODS, "none") if method == "auto" else (method,)
    fitted = {name: fit(name, fit_logits, fit_y) for name in candidates}
    scores = {
        name: nll(calibration.apply(record, select_logits), select_y) for name, record in fitted.items()
    }
    scores["none"] = nll(calibration.sigmoid(select_logits), select_y)
    best = min(candidates, key=lambda name: scores[name])
    return fitted[best], scores
