"""Rollout analysis on request logs alone: promote, hold or roll back, with the reasons.

Pure functions of the logged records (see request_log.py), so the local CLI and the cluster
operator reach the same verdict on the same logs:

- canary vs main: error rate (one-sided two-proportion z-test, plus a minimum increase that
  matters), latency (one-sided Mann-Whitney U on per-request latency, plus a p99 ratio), and
  the shift of the score distribution (PSI over the main predictor's deciles);
- shadow vs main: on the same requests (paired by request id and row), the share of equal
  decisions and the correlation of the probabilities, and the shadow's own error rate;
- with enough labeled rows (labels/<model>/), the scores' ROC AUC against main's and floors
  on recall and specificity (labeled.py) judge the candidate, and the agreement, correlation
  and score shift, proxies that take main to be right, are only reported.

The candidate version's `Task` reads the logged answers (`Task.answer_names`): a binary row
logs one probability, a multi-class row one per class. Score shift and correlation are then
taken per class and the worst class is judged; the labeled checks use the task's ranking
score and floors. No verdict before `min_requests` requests on each side: until then the
answer is hold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.stats import mannwhitneyu, norm

from components.common.rollout_config import RolloutAnalysis
from components.common.store import Store
from components.common.tasks import Task, default_task
from components.deploy.labeled import Key, Outcome, columns, outcomes, paired_checks, unpaired_checks

Decision = Literal["promote", "hold", "rollback"]


AnalysisSettings = RolloutAnalysis
"""The thresholds: the config's `deployment.analysis` model itself (the CRD derives from it too)."""


@dataclass
class Verdict:
    """The decision, one line per reason, and every check with its numbers."""

    decision: Decision
    reasons: list[str]
    checks: list[dict[str, Any]] = field(default_factory=list)

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


def _requests(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One entry per request id: its status and latency (client errors left out)."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        status = int(r.get("status", 200))
        if 400 <= status < 500:
            continue  # the caller's mistake, not the model's: it says nothing about a version
        entry = out.setdefault(r["request_id"], {"status": status, "latency_ms": float(r["latency_ms"])})
        entry["status"] = max(entry["status"], status)
    return out


def two_proportion_p(errors_a: int, n_a: int, errors_b: int, n_b: int) -> float:
    """One-sided p-value that b's error rate exceeds a's (pooled two-proportion z-test)."""
    pooled = (errors_a + errors_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0
    z = (errors_b / n_b - errors_a / n_a) / se
    return float(norm.sf(z))


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `current` against `reference`, over reference deciles."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    p = np.clip(ref / ref.sum(), 1e-4, None)
    q = np.clip(cur / cur.sum(), 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


def _check(name: str, observed: float, limit: float, passed: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "observed": round(observed, 6), "limit": limit, "passed": passed, "detail": detail}


def _error_check(
    main: dict[str, Any], other: dict[str, Any], label: str, s: AnalysisSettings
) -> dict[str, Any]:
    e_main = sum(1 for r in main.values() if r["status"] >= 500)
    e_other = sum(1 for r in other.values() if r["status"] >= 500)
    rate_main, rate_other = e_main / len(main), e_other / len(other)
    p = two_proportion_p(e_main, len(main), e_other, len(other))
    worse = p < s.alpha and rate_other - rate_main > s.max_error_increase
    detail = f"{label} {rate_other:.2%} ({e_other}/{len(other)}) vs main {rate_main:.2%}, one-sided p={p:.3g}"
    return _check("error rate", rate_other - rate_main, s.max_error_increase, not worse, detail)


def _sample_hold(sizes: dict[str, int], s: AnalysisSettings) -> Verdict | None:
    short = {k: n for k, n in sizes.items() if n < s.min_requests}
    if not short:
        return None
    text = ", ".join(f"{k} {n}" for k, n in short.items())
    return Verdict("hold", [f"too few requests for a verdict ({text}; need {s.min_requests} each)"])


def _informational(checks: list[dict[str, Any]], why: str) -> list[dict[str, Any]]:
    """Proxy checks kept for the record once labels judge: they pass, and say why they do not count."""
    return [{**c, "passed": True, "detail": f"{c['detail']} (not judged: {why})"} for c in checks]


def _verdict(checks: list[dict[str, Any]]) -> Verdict:
    failed = [c for c in checks if not c["passed"]]
    if failed:
        return Verdict("rollback", [f"{c['check']}: {c['detail']}" for c in failed], checks)
    return Verdict("promote", ["every check passed: " + "; ".join(c["detail"] for c in checks)], checks)


def tail_quantile(n: int, at_least: int = 10) -> float:
    """The tail quantile a sample of `n` measures well: p99 with 1,000 or more, else the highest
    quantile with `at_least` values above it (p95 with 200). The p99 of 200 latencies is the
    second-largest value, which one slow request on a busy host can double."""
    return min(0.99, max(0.5, math.floor(100 * (1 - at_least / n)) / 100))


def _latency_check(lat_main: np.ndarray, lat_canary: np.ndarray, s: AnalysisSettings) -> dict[str, Any]:
    """Slower when Mann-Whitney says so and the median or the tail grew by both a ratio and an
    absolute amount: a fraction of a millisecond is noise on a shared host, not a regression."""
    p = float(mannwhitneyu(lat_canary, lat_main, alternative="greater").pvalue)
    q = tail_quantile(min(len(lat_main), len(lat_canary)))
    p50_main, p50_canary = float(np.median(lat_main)), float(np.median(lat_canary))
    tail_main, tail_canary = np.percentile(lat_main, 100 * q), np.percentile(lat_canary, 100 * q)
    p50_ratio = p50_canary / p50_main if p50_main > 0 else math.inf
    tail_ratio = float(tail_canary / tail_main) if tail_main > 0 else math.inf
    median_worse = p50_ratio > s.max_p50_ratio and p50_canary - p50_main > s.min_latency_increase_ms
    tail_worse = tail_ratio > s.max_p99_ratio and tail_canary - tail_main > s.min_latency_increase_ms
    slower = p < s.alpha and (median_worse or tail_worse)
    tail = f"p{100 * q:g}"
    detail = (
        f"canary p50 {p50_canary:.1f} ms / {tail} {tail_canary:.1f} ms vs main {p50_main:.1f} / "
        f"{tail_main:.1f} ms (ratios {p50_ratio:.2f} / {tail_ratio:.2f}, Mann-Whitney p={p:.3g})"
    )
    return _check("latency", max(p50_ratio, tail_ratio), s.max_p99_ratio, not slower, detail)


def _shift_check(
    task: Task, main: Mapping[Key, Outcome], canary: Mapping[Key, Outcome], s: AnalysisSettings
) -> list[dict[str, Any]]:
    """PSI of each answer field (multi-class: each class's probability) over main's deciles;
    the worst field is judged. No check without scores on both sides."""
    a, b = columns(task, main, list(main)), columns(task, canary, list(canary))
    if not (len(a) and len(b)):
        return []
    shifts = {name: psi(a[:, i], b[:, i]) for i, name in enumerate(task.answer_names)}
    worst = max(shifts, key=lambda name: shifts[name])
    shift = shifts[worst]
    detail = f"PSI of canary scores against main's {shift:.3f}"
    if len(shifts) > 1:
        detail += f" ({worst}, the largest of: " + ", ".join(f"{n} {v:.3f}" for n, v in shifts.items()) + ")"
    return [_check("score shift", shift, s.max_psi, shift <= s.max_psi, detail)]


def _correlation(task: Task, a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    """Pearson r of paired answers, the lowest over the answer fields, and which field it is
    (named where there are several); 1.0 for a field constant on either side."""
    values = {
        name: float(np.corrcoef(a[:, i], b[:, i])[0, 1]) if a[:, i].std() and b[:, i].std() else 1.0
        for i, name in enumerate(task.answer_names)
    }
    worst = min(values, key=lambda name: values[name])
    return values[worst], (f" ({worst}, the lowest)" if len(values) > 1 else "")


def analyse_canary(
    main_records: list[dict[str, Any]],
    canary_records: list[dict[str, Any]],
    settings: AnalysisSettings,
    labels: Mapping[Key, int] | None = None,
    task: Task | None = None,
) -> Verdict:
    """Canary against main: errors, latency, and quality on labeled rows, else the score shift.

    Args:
        main_records: Main's logged rows.
        canary_records: The canary's logged rows.
        settings: The thresholds.
        labels: (request id, row) -> class index (`Task.targets`) of the labeled served rows.
        task: The candidate version's task, which reads the rows' answers (default: one
            probability per row).
    """
    task = task or default_task()
    main, canary = _requests(main_records), _requests(canary_records)
    held = _sample_hold({"main": len(main), "canary": len(canary)}, settings)
    if held:
        return held
    checks = [_error_check(main, canary, "canary", settings)]
    lat_main = np.array([r["latency_ms"] for r in main.values()])
    lat_canary = np.array([r["latency_ms"] for r in canary.values()])
    checks.append(_latency_check(lat_main, lat_canary, settings))
    main_scores, canary_scores = outcomes(main_records, task), outcomes(canary_records, task)
    proxy = _shift_check(task, main_scores, canary_scores, settings)
    quality = unpaired_checks(main_scores, canary_scores, labels or {}, settings, task=task)
    if quality is None:
        return _verdict(checks + proxy)
    return _verdict(checks + quality + _informational(proxy, "labeled rows judge the decisions"))


def analyse_shadow(
    main_records: list[dict[str, Any]],
    shadow_records: list[dict[str, Any]],
    settings: AnalysisSettings,
    labels: Mapping[Key, int] | None = None,
    task: Task | None = None,
) -> Verdict:
    """Shadow against main on the same requests: its errors, and quality on labeled rows, else
    agreement and correlation (arguments as `analyse_canary`'s)."""
    task = task or default_task()
    main_scores, shadow_scores = outcomes(main_records, task), outcomes(shadow_records, task)
    paired = sorted(set(main_scores) & set(shadow_scores))
    main, shadow = _requests(main_records), _requests(shadow_records)
    held = _sample_hold({"paired requests": len({k[0] for k in paired}), "shadow": len(shadow)}, settings)
    if held:
        return held
    agreement = float(np.mean([main_scores[k][1] == shadow_scores[k][1] for k in paired])) if paired else 1.0
    correlation, worst = _correlation(
        task, columns(task, main_scores, paired), columns(task, shadow_scores, paired)
    )
    proxy = [
        _check(
            "agreement",
            agreement,
            settings.min_agreement,
            agreement >= settings.min_agreement,
            f"same decision on {agreement:.2%} of {len(paired)} paired rows",
        ),
        _check(
            "score correlation",
            correlation,
            settings.min_correlation,
            correlation >= settings.min_correlation,
            f"Pearson r {correlation:.3f} between shadow and main probabilities{worst}",
        ),
    ]
    checks = [_error_check(main, shadow, "shadow", settings)]
    quality = paired_checks(main_scores, shadow_scores, labels or {}, settings, task=task)
    if quality is None:
        return _verdict(checks + proxy)
    return _verdict(checks + quality + _informational(proxy, "labeled rows judge the decisions"))
