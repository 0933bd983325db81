"""Binary-classification metrics at an operating threshold, and the gate checks."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from components.common.config import EvaluationConfig
from components.evaluate.bootstrap import point_metrics


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Every metric of `bootstrap.METRICS` plus prevalence and the confusion counts.

    A ratio with an empty denominator is 0.0, as scikit-learn's zero_division default.
    """
    pred = p >= threshold
    values = {k: (0.0 if np.isnan(v) else v) for k, v in point_metrics(y, p, threshold).items()}
    return {
        **values,
        "prevalence": float(np.mean(y)),
        "tp": int(np.sum(pred & (y == 1))),
        "fp": int(np.sum(pred & (y == 0))),
        "fn": int(np.sum(~pred & (y == 1))),
        "tn": int(np.sum(~pred & (y == 0))),
    }


def matching_recall_threshold(scores: np.ndarray, y: np.ndarray, recall: float) -> float:
    """The highest threshold at which `scores` reach at least `recall` (to compare at equal recall)."""
    positives = np.sort(scores[y == 1])[::-1]
    if len(positives) == 0:
        return 0.5
    needed = min(len(positives), max(1, int(np.ceil(recall * len(positives) - 1e-9))))
    return float(positives[needed - 1])


def roc_points(y: np.ndarray, p: np.ndarray, limit: int = 200) -> dict[str, list[float]]:
    """ROC curve thinned to at most `limit` points (the Kubeflow UI draws these)."""
    fpr, tpr, thresholds = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(limit, len(fpr))).astype(int))
    finite = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": finite[keep].tolist()}


def curves(y: np.ndarray, p: np.ndarray, limit: int = 200) -> dict[str, dict[str, Any]]:
    """ROC (`roc_points`, with thresholds for the Kubeflow UI) and precision-recall curves,
    each thinned to at most `limit` points."""
    precision, recall, _ = precision_recall_curve(y, p)
    q = np.unique(np.linspace(0, len(recall) - 1, min(limit, len(recall))).astype(int))
    return {
        "roc": roc_points(y, p, limit),
        "pr": {
            "recall": recall[q].tolist(),
            "precision": precision[q].tolist(),
            "prevalence": float(np.mean(y)),
        },
    }


def gate_checks(
    metrics: dict[str, float],
    cfg: EvaluationConfig,
    baseline: dict[str, float] | None = None,
    worst: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each configured floor, the slice gap and the baseline when asked, as checks with numbers."""
    floors = {"recall": cfg.min_recall, "precision": cfg.min_precision, "roc_auc": cfg.min_roc_auc}
    checks = [
        {
            "check": f"{name} >= {floor}",
            "metric": name,
            "observed": round(metrics[name], 4),
            "required": floor,
            "passed": metrics[name] >= floor,
        }
        for name, floor in floors.items()
        if floor is not None
    ]
    if cfg.max_slice_gap is not None and worst is not None:
        checks.append(
            {
                "check": f"worst-slice {worst['metric']} gap <= {cfg.max_slice_gap}",
                "metric": f"{worst['metric']} gap ({worst['column']}={worst['slice']})",
                "observed": worst["gap"],
                "required": cfg.max_slice_gap,
                "passed": worst["gap"] <= cfg.max_slice_gap,
            }
        )
    if cfg.must_beat_baseline and baseline is not None:
        required = round(baseline["roc_auc"], 4)
        checks.append(
            {
                "check": "roc_auc >= logistic-regression baseline",
                "metric": "roc_auc",
                "observed": round(metrics["roc_auc"], 4),
                "required": required,
                "passed": metrics["roc_auc"] >= baseline["roc_auc"],
            }
        )
    return checks
