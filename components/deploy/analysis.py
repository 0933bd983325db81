"""Rollout guardrails on request logs: errors, latency and the candidate's own score distribution.

Pure functions of the logged records (see request_log.py), so the local CLI, the operator and
the decision benchmark reach the same verdict on the same logs. Every guardrail states a
tolerance and is judged with always-valid bounds (sequential.py) on the current step's
requests, for every strategy (a shadow's mirrored calls too):

- 5xx rate: candidate - main, within `max_error_increase`;
- typical latency: the ratio of geometric means (the median of a log-normal), within
  `max_p50_ratio` or `min_latency_increase_ms`;
- tail latency: the share of the candidate's requests slower than `max_p99_ratio` times main's
  p99 (p95 with fewer than 1,000 requests), within the 1% (5%) main itself has there;
- its served scores against its own validation scores (PSI, less what sampling alone gives),
  within `max_psi`: a serving skew that keeps the ranking still moves the operating point.

pass: the upper bound is within the tolerance (evidence of no harm); fail: the lower bound is
beyond it (evidence of harm); pending: neither yet, or fewer than `min_requests` requests.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from components.common.rollout_config import RolloutAnalysis
from components.common.store import Store
from components.deploy.sequential import bounds

Decision = Literal["promote", "hold", "rollback"]
Check = dict[str, Any]

AnalysisSettings = RolloutAnalysis
"""The thresholds: the config's `deployment.analysis` model itself (the CRD derives from it too)."""


@dataclass
class Verdict:
    """The decision, one line per reason, every check with its numbers, and the evidence a
    held step still needs (the power calculation), when it needs some."""

    decision: Decision
    reasons: list[str]
    checks: list[dict[str, Any]] = field(default_factory=list)
    needs: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as recorded with the rollout."""
        return asdict(self)


def read_logs(store: Store, model: str, predictor: str, since_window: str = "") -> list[dict[str, Any]]:
    """Every record one predictor logged, from window folder `since_window` (inclusive) on."""
    records = []
    for key in sorted(store.list(f"logs/{model}/{predictor}")):
        window = key.rsplit("/", 2)[-2]
        if key.endswith(".jsonl") and window >= since_window:
            records += [json.loads(line) for line in store.read_text(key).splitlines() if line]
    return records


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `current` against `reference`, over reference deciles."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    p = np.clip(ref / ref.sum(), 1e-4, None)
    q = np.clip(cur / cur.sum(), 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


def tail_quantile(n: int, at_least: int = 10) -> float:
    """The tail quantile a sample of `n` measures well: p99 with 1,000 or more, else the highest
    quantile with `at_least` values above it (p95 with 200). The p99 of 200 latencies is the
    second-largest value, which one slow request on a busy host can double."""
    return min(0.99, max(0.5, math.floor(100 * (1 - at_least / n)) / 100))


def judged(
    name: str, estimate: float, se: float, tolerance: float, s: RolloutAnalysis, detail: str, rows: int
) -> Check:
    """A guardrail on candidate - main (higher is worse) with its always-valid bounds."""
    b = bounds(estimate, se, s.alpha, se)
    if b.upper <= tolerance:
        status, words = "pass", "within"
    elif b.lower > tolerance:
        status, words = "fail", "beyond"
    else:
        status, words = "pending", "not yet known against"
    return {
        "check": name,
        "status": status,
        "passed": status != "fail",
        "observed": round(estimate, 6),
        "limit": round(tolerance, 6),
        "bounds": [round(b.lower, 6), round(b.upper, 6)],
        "rows": rows,
        "detail": f"{detail}: bounds [{b.lower:+.4g}, {b.upper:+.4g}], {words} the tolerance "
        f"{tolerance:+.4g}",
    }


def waiting(have: dict[str, int], s: RolloutAnalysis, warmed: bool = False) -> Check:
    """The guardrails (`warmed`: the latency checks, past the warm-up) without enough requests yet."""
    text = ", ".join(f"{k} {n}" for k, n in have.items())
    what = (
        f"past the {s.warmup_seconds:g} s warm-up for the latency checks"
        if warmed
        else "at this weight for the guardrails"
    )
    return {
        "check": "latency" if warmed else "guardrails",
        "status": "pending",
        "passed": True,
        "observed": None,
        "limit": s.min_requests,
        "rows": min(have.values()),
        "detail": f"too few requests {what} ({text}; need {s.min_requests} each)",
    }


def _rate(events: int, n: int) -> tuple[float, float]:
    """A rate and its variance, with one event and one non-event added (Agresti-Caffo): no
    variance of 0 from a side that has not failed yet."""
    rate = (events + 1) / (n + 2)
    return events / n if n else 0.0, rate * (1 - rate) / (n + 2)


def error_check(main: pd.DataFrame, other: pd.DataFrame, label: str, s: RolloutAnalysis) -> Check:
    """5xx rate of the candidate minus main's, over requests (logframe.requests)."""
    e_main = int((main["status"].to_numpy() >= 500).sum())
    e_other = int((other["status"].to_numpy() >= 500).sum())
    rate_main, var_main = _rate(e_main, len(main))
    rate_other, var_other = _rate(e_other, len(other))
    detail = (
        f"error rate: {label} {rate_other:.2%} ({e_other}/{len(other)}) vs main {rate_main:.2%} "
        f"({e_main}/{len(main)})"
    )
    return judged(
        "error rate",
        rate_other - rate_main,
        math.sqrt(var_main + var_other),
        s.max_error_increase,
        s,
        detail,
        len(other),
    )


def latency_checks(
    lat_main: np.ndarray, lat_other: np.ndarray, label: str, s: RolloutAnalysis
) -> list[Check]:
    """Typical latency (log ratio of geometric means) and the tail (share beyond main's)."""
    log_main, log_other = np.log(np.maximum(lat_main, 1e-3)), np.log(np.maximum(lat_other, 1e-3))
    p50_main, p50_other = float(np.median(lat_main)), float(np.median(lat_other))
    ratio = max(s.max_p50_ratio, 1 + s.min_latency_increase_ms / max(p50_main, 1e-3))
    se = math.sqrt(log_main.var(ddof=1) / len(log_main) + log_other.var(ddof=1) / len(log_other))
    estimate = float(log_other.mean() - log_main.mean())
    typical = judged(
        "latency",
        estimate,
        se,
        math.log(ratio),
        s,
        f"latency: typical {label} {math.exp(estimate):.2f}x main's (p50 {p50_other:.1f} vs "
        f"{p50_main:.1f} ms, log ratio, tolerated up to {ratio:.2f}x)",
        len(lat_other),
    )
    q = tail_quantile(len(lat_main))
    tail_main = float(np.quantile(lat_main, q))
    limit = max(s.max_p99_ratio * tail_main, tail_main + s.min_latency_increase_ms)
    slow = int(np.sum(lat_other > limit))
    share, variance = _rate(slow, len(lat_other))
    tail = judged(
        "tail latency",
        share,
        math.sqrt(variance),
        1 - q,
        s,
        f"tail latency: {share:.2%} of {label} requests ({slow}/{len(lat_other)}) slower than {limit:.1f} ms "
        f"({s.max_p99_ratio:g}x main's p{100 * q:g} {tail_main:.1f} ms)",
        len(lat_other),
    )
    return [typical, tail]


def own_shift_check(
    names: tuple[str, ...], reference: np.ndarray, served: np.ndarray, s: RolloutAnalysis
) -> Check:
    """PSI of the served answers (each field) against the candidate's validation answers, less
    the PSI sampling alone gives (about (bins - 1) / rows); the worst field is judged."""
    shifts = {n: psi(reference[:, i], served[:, i]) for i, n in enumerate(names)}
    worst = max(shifts, key=lambda n: shifts[n])
    noise = 9 / len(served) + 9 / len(reference)
    excess = shifts[worst] - noise
    status = "fail" if excess > s.max_psi else "pass"
    detail = (
        f"own score shift: PSI of its served scores against its own validation scores {shifts[worst]:.3f} on "
        f"{len(served)} rows "
        f"({noise:.3f} expected from sampling alone)"
    )
    if len(names) > 1:
        detail += f", {worst} the largest of: " + ", ".join(f"{n} {v:.3f}" for n, v in shifts.items())
    return {
        "check": "own score shift",
        "status": status,
        "passed": status != "fail",
        "observed": round(excess, 6),
        "limit": s.max_psi,
        "rows": len(served),
        "detail": f"{detail}, tolerated {s.max_psi}"
        + (": its operating point no longer holds" if status == "fail" else ""),
    }
