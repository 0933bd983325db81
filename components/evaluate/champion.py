"""The champion/challenger comparison: the registry's production model on the same test rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.common import calibration
from components.common.artifacts import DatasetSchema
from components.common.config import EvaluationConfig
from components.common.registry import Registry
from components.common.scoring import calibrated_scores
from components.common.tasks import Scores, Task


@dataclass
class Champion:
    """The production version scored as it serves: its own calibration and operating point."""

    version: str
    probabilities: np.ndarray | None
    point: dict[str, Any]
    error: str | None = None

    @property
    def threshold(self) -> float | None:
        """The operating threshold, where the point has one."""
        value = self.point.get("threshold")
        return None if value is None else float(value)


def score_champion(
    registry: Registry, task: Task, name: str, test: pd.DataFrame, default_threshold: float
) -> Champion | None:
    """The champion's calibrated scores on `test`, or None when no version is in production.

    A champion that cannot score these rows (its features are gone, its files are damaged)
    comes back with `error` set: the gate then fails and says so, rather than skip silently.
    """
    version = registry.champion(name)
    if version is None:
        return None
    prefix = registry.version_prefix(name, version)
    try:
        record = calibration.normalise(
            registry.store.read_json(f"{prefix}/calibration.json"), default_threshold
        )
        modality = DatasetSchema.read(registry.store, prefix).make_modality()  # the champion's inputs
        _, probabilities = calibrated_scores(registry.store, prefix, record, test, task, modality)
    except Exception as exc:  # noqa: BLE001 - any failure is reported as a failed check, not a crash
        return Champion(version, None, {"threshold": default_threshold}, f"{type(exc).__name__}: {exc}")
    return Champion(version, probabilities, dict(record["operating_point"]))


def regression_checks(
    task: Task,
    y: np.ndarray,
    candidate: Scores,
    champion: Champion,
    cfg: EvaluationConfig,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One check per `max_regression` metric, and the comparison table behind them."""
    if champion.probabilities is None:
        check = {
            "check": f"champion v{champion.version} scored on the same test rows",
            "metric": "champion",
            "observed": champion.error,
            "required": "scores",
            "passed": False,
        }
        return [check], {"version": champion.version, "error": champion.error}
    metrics = sorted(set(cfg.max_regression) | set(task.headline_metrics) | set(task.slice_metrics))
    reference = task.scores(y, champion.probabilities, champion.point)
    table = candidate.paired(reference, metrics, cfg.bootstrap_resamples, cfg.confidence, seed)
    checks = []
    for metric, margin in cfg.max_regression.items():
        row = table[metric]
        interval = cfg.regression_rule == "interval"
        observed = row["low"] if interval else row["difference"]
        bound = "lower CI bound of " if interval else ""
        passed = bool(not math.isnan(observed) and observed >= -margin - 1e-12)
        checks.append(
            {
                "check": f"{bound}{metric} candidate - champion v{champion.version} >= -{margin}",
                "metric": f"{metric} vs champion",
                "observed": round(observed, 4) if not math.isnan(observed) else None,
                "required": -margin,
                "passed": passed,
                "candidate": round(row["candidate"], 4),
                "champion": round(row["reference"], 4),
                "interval": None if math.isnan(row["low"]) else [round(row["low"], 4), round(row["high"], 4)],
            }
        )
    comparison = {
        "version": champion.version,
        "threshold": champion.threshold,
        "operating_point": champion.point,
        "rule": cfg.regression_rule,
        "confidence": cfg.confidence,
        "metrics": table,
    }
    return checks, comparison
