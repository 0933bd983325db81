"""The evaluation gate's checks: floors, the worst-slice gap and the baseline."""

from __future__ import annotations

import math
from typing import Any

from components.common.config import EvaluationConfig


def gate_checks(
    metrics: dict[str, float],
    cfg: EvaluationConfig,
    baseline: dict[str, float] | None = None,
    worst: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each configured floor, the slice gap and the baseline when asked, as checks with numbers.

    A floor on a metric the evaluation does not have (a class that is not in the data) fails,
    naming the metrics there are: a gate that cannot be checked must not pass.
    """
    checks = []
    for name, floor in cfg.gate_floors().items():
        value = metrics.get(name)
        defined = isinstance(value, int | float) and not math.isnan(value)
        checks.append(
            {
                "check": f"{name} >= {floor}",
                "metric": name,
                "observed": round(float(value), 4) if defined and value is not None else None,
                "required": floor,
                "passed": bool(defined and value is not None and value >= floor),
                **(
                    {} if name in metrics else {"error": f"no metric {name!r}; metrics: {', '.join(metrics)}"}
                ),
            }
        )
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
