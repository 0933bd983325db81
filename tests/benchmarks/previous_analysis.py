"""The rollout analysis before issue 24, frozen here so the decision benchmark can measure it again.

components/deploy/analysis.py and labeled.py at commit 30f1363, unchanged but for what had to
move: its settings (the `deployment.analysis` fields it read, with their defaults then), the
store reader and the Verdict it shared with today's analysis. Nothing in the product calls it;
`.venv/bin/python tests/benchmarks/bench_decisions.py --decider old` does, to recompute the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import mannwhitneyu, norm

from components.common.tasks import Task, default_task
from components.deploy.analysis import Verdict, psi  # psi: unchanged since 30f1363


@dataclass(frozen=True)
class PreviousSettings:
    """The thresholds the previous analysis read, with their defaults at 30f1363."""

    min_requests: int = 200
    alpha: float = 0.05
    max_error_increase: float = 0.01
    max_p50_ratio: float = 1.25
    max_p99_ratio: float = 1.5
    min_latency_increase_ms: float = 5.0
    max_psi: float = 0.2
    min_agreement: float = 0.95
    min_correlation: float = 0.9
    min_labeled: int = 200
    min_labeled_positives: int = 10
    max_auc_drop: float = 0.02
    min_recall: float | None = None
    min_specificity: float | None = None


Key = tuple[str, int]
Outcome = tuple[tuple[float, ...], int]
"""A served row's answer fields (`Task.answer_names`) and its decision."""
RESAMPLES = 300


def outcomes(records: Iterable[Mapping[str, Any]], task: Task | None = None) -> dict[Key, Outcome]:
    """(request id, row) -> (answer fields, decision) of every answered row that logged them all."""
    names = (task or default_task()).answer_names
    return {
        (str(r["request_id"]), int(r["row"])): (tuple(float(r[n]) for n in names), int(r["decision"]))
        for r in records
        if int(r.get("status", 200)) == 200 and "decision" in r and all(n in r for n in names)
    }


def columns(task: Task, side: Mapping[Key, Outcome], keys: Iterable[Key]) -> np.ndarray:
    """The rows' answer fields as columns: (n, len(Task.answer_names))."""
    rows = [side[k][0] for k in keys]
    return np.array(rows, dtype=float).reshape(len(rows), len(task.answer_names))


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


def _labeled(
    task: Task, side: Mapping[Key, Outcome], labels: Mapping[Key, int], keys: list[Key] | None = None
) -> Arrays:
    """Labels, probabilities and decisions of the labeled rows (of `keys`, default all)."""
    keys = keys if keys is not None else [k for k in side if k in labels]
    y = np.array([labels[k] for k in keys], dtype=int)
    d = np.array([side[k][1] for k in keys], dtype=int)
    return y, task.output_array(columns(task, side, keys)), d


def _enough(task: Task, y: np.ndarray, s: PreviousSettings) -> bool:
    return len(y) >= s.min_labeled and task.labeled_positives(y) >= s.min_labeled_positives


def _auc_check(
    diffs: np.ndarray, observed: float, a: tuple[float, float], s: PreviousSettings, n: str
) -> dict[str, Any]:
    upper = float(np.nanquantile(diffs, 1 - s.alpha)) if np.isfinite(diffs).any() else float("nan")
    worse = bool(np.isfinite(upper) and upper < -s.max_auc_drop)
    detail = (
        f"ROC AUC {a[0]:.3f} vs main {a[1]:.3f} on {n} (difference {observed:+.3f}, "
        f"{100 * (1 - s.alpha):g}% upper bound {upper:+.3f}, margin -{s.max_auc_drop})"
    )
    return {
        "check": "roc_auc",
        "observed": round(observed, 6),
        "limit": -s.max_auc_drop,
        "passed": not worse,
        "detail": detail,
    }


def _floors(
    task: Task, y: np.ndarray, d: np.ndarray, main: tuple[np.ndarray, np.ndarray], s: PreviousSettings
) -> list[dict[str, Any]]:
    checks = []
    theirs = task.floor_rates(*main)
    for name, (rate, rows, what) in task.floor_rates(y, d).items():
        floor = {"recall": s.min_recall, "specificity": s.min_specificity}[name]
        detail = f"{what} {rate:.3f} (main {theirs[name][0]:.3f}) on {rows} labeled rows"
        if floor is None:
            checks.append(
                {"check": name, "observed": round(rate, 6), "limit": None, "passed": True, "detail": detail}
            )
        else:
            checks.append(
                {
                    "check": name,
                    "observed": round(rate, 6),
                    "limit": floor,
                    "passed": rate >= floor,
                    "detail": f"{detail}, floor {floor}",
                }
            )
    return checks


def paired_checks(
    main: Mapping[Key, Outcome],
    candidate: Mapping[Key, Outcome],
    labels: Mapping[Key, int],
    s: PreviousSettings,
    seed: int = 0,
    task: Task | None = None,
) -> list[dict[str, Any]] | None:
    """The shadow against main on the labeled rows both answered (`labels`: class indices)."""
    task = task or default_task()
    keys = [k for k in candidate if k in main and k in labels]
    y, p_c, d_c = _labeled(task, candidate, labels, keys)
    _, p_m, d_m = _labeled(task, main, labels, keys)
    if not _enough(task, y, s):
        return None
    a_c, a_m = task.ranking_score(y, p_c), task.ranking_score(y, p_m)
    rng = np.random.default_rng(seed)
    diffs = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        pick = rng.integers(0, len(y), len(y))
        diffs[i] = task.ranking_score(y[pick], p_c[pick]) - task.ranking_score(y[pick], p_m[pick])
    checks = [_auc_check(diffs, a_c - a_m, (a_c, a_m), s, f"the same {len(y)} labeled rows")]
    return checks + _floors(task, y, d_c, (y, d_m), s)


def unpaired_checks(
    main: Mapping[Key, Outcome],
    candidate: Mapping[Key, Outcome],
    labels: Mapping[Key, int],
    s: PreviousSettings,
    seed: int = 0,
    task: Task | None = None,
) -> list[dict[str, Any]] | None:
    """The canary's labeled rows against main's (`labels`: class indices)."""
    task = task or default_task()
    y_c, p_c, d_c = _labeled(task, candidate, labels)
    y_m, p_m, d_m = _labeled(task, main, labels)
    if not (_enough(task, y_c, s) and _enough(task, y_m, s)):
        return None
    a_c, a_m = task.ranking_score(y_c, p_c), task.ranking_score(y_m, p_m)
    rng = np.random.default_rng(seed)
    diffs = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        pick_c, pick_m = rng.integers(0, len(y_c), len(y_c)), rng.integers(0, len(y_m), len(y_m))
        diffs[i] = task.ranking_score(y_c[pick_c], p_c[pick_c]) - task.ranking_score(y_m[pick_m], p_m[pick_m])
    where = f"{len(y_c)} canary and {len(y_m)} main labeled rows"
    return [_auc_check(diffs, a_c - a_m, (a_c, a_m), s, where), *_floors(task, y_c, d_c, (y_m, d_m), s)]


Decision = Literal["promote", "hold", "rollback"]


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


def _check(name: str, observed: float, limit: float, passed: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "observed": round(observed, 6), "limit": limit, "passed": passed, "detail": detail}


def _error_check(
    main: dict[str, Any], other: dict[str, Any], label: str, s: PreviousSettings
) -> dict[str, Any]:
    e_main = sum(1 for r in main.values() if r["status"] >= 500)
    e_other = sum(1 for r in other.values() if r["status"] >= 500)
    rate_main, rate_other = e_main / len(main), e_other / len(other)
    p = two_proportion_p(e_main, len(main), e_other, len(other))
    worse = p < s.alpha and rate_other - rate_main > s.max_error_increase
    detail = f"{label} {rate_other:.2%} ({e_other}/{len(other)}) vs main {rate_main:.2%}, one-sided p={p:.3g}"
    return _check("error rate", rate_other - rate_main, s.max_error_increase, not worse, detail)


def _sample_hold(sizes: dict[str, int], s: PreviousSettings) -> Verdict | None:
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


def _latency_check(lat_main: np.ndarray, lat_canary: np.ndarray, s: PreviousSettings) -> dict[str, Any]:
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
    task: Task, main: Mapping[Key, Outcome], canary: Mapping[Key, Outcome], s: PreviousSettings
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
    settings: PreviousSettings,
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
    settings: PreviousSettings,
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
