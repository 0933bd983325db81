"""Binary-classification metrics at an operating threshold, and the gate checks."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from components.common.config import EvaluationConfig


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Recall, precision, specificity, F1, accuracy, ROC-AUC, PR-AUC and confusion counts."""
    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    recall = tp / (tp + fn) if tp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    return {
        "recall": recall,
        "precision": precision,
        "specificity": tn / (tn + fp) if tn + fp else 0.0,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "accuracy": (tp + tn) / len(y),
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "prevalence": float(np.mean(y)),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def roc_points(y: np.ndarray, p: np.ndarray, limit: int = 200) -> dict[str, list[float]]:
    """ROC curve thinned to at most `limit` points (the Kubeflow UI draws these)."""
    fpr, tpr, thresholds = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(limit, len(fpr))).astype(int))
    finite = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": finite[keep].tolist()}


def gate_checks(metrics: dict[str, float], cfg: EvaluationConfig) -> list[dict[str, Any]]:
    """Each configured floor as a check with its numbers."""
    floors = {"recall": cfg.min_recall, "precision": cfg.min_precision, "roc_auc": cfg.min_roc_auc}
    return [
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
