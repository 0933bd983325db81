"""Rollout verdicts from request logs: each fault is rolled back, a healthy candidate promoted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from components.common.store import LocalStore
from components.deploy.analysis import (
    AnalysisSettings,
    analyse_canary,
    analyse_shadow,
    psi,
    read_logs,
    tail_quantile,
    two_proportion_p,
)
from components.deploy.request_log import RequestLog

SETTINGS = AnalysisSettings(min_requests=300)


def traffic(
    predictor: str,
    n: int,
    seed: int,
    error_rate: float = 0.0,
    latency_ms: float = 8.0,
    score_shift: float = 0.0,
    ids: str = "",
) -> list[dict[str, Any]]:
    """Logged rows of `n` single-row requests, as the model class writes them."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        common = {
            "request_id": f"{ids or predictor}-{i}",
            "row": 0,
            "time": "2026-11-23T10:00:00.000+00:00",
            "predictor": predictor,
            "latency_ms": float(rng.gamma(4.0, latency_ms / 4.0)),
        }
        if rng.random() < error_rate:
            rows.append({**common, "status": 500, "error": "RuntimeError: boom"})
            continue
        # Scores depend on the request (seeded by its index) so a shadow sees the same cases.
        base = np.random.default_rng(i).beta(1.0, 12.0)
        p = float(np.clip(base + score_shift + rng.normal(0, 0.002), 0, 1))
        rows.append({**common, "status": 200, "probability": p, "decision": int(p >= 0.1)})
    return rows


def test_two_proportion_test_matches_the_chi_square_test() -> None:
    p = two_proportion_p(10, 1000, 30, 1000)
    chi2, two_sided, _, _ = chi2_contingency([[10, 990], [30, 970]], correction=False)
    assert p == pytest.approx(two_sided / 2, rel=1e-9)
    assert two_proportion_p(30, 1000, 10, 1000) == pytest.approx(1 - two_sided / 2, rel=1e-9)


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.beta(1, 12, 20_000)
    assert psi(reference, rng.beta(1, 12, 20_000)) < 0.01
    assert psi(reference, reference + 0.05) > 0.2


def test_a_healthy_canary_is_promoted() -> None:
    verdict = analyse_canary(traffic("main", 900, 1), traffic("canary", 400, 2), SETTINGS)
    assert verdict.decision == "promote", verdict.reasons
    assert [c["check"] for c in verdict.checks] == ["error rate", "latency", "score shift"]


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ({"error_rate": 0.08}, "error rate"),
        ({"latency_ms": 20.0}, "latency"),
        ({"score_shift": 0.08}, "score shift"),
    ],
)
def test_each_faulty_canary_is_rolled_back_for_its_reason(fault: dict[str, float], check: str) -> None:
    verdict = analyse_canary(traffic("main", 900, 1), traffic("canary", 400, 2, **fault), SETTINGS)
    assert verdict.decision == "rollback"
    assert [c["check"] for c in verdict.checks if not c["passed"]] == [check]
    assert verdict.reasons[0].startswith(f"{check}: ")


def test_a_slightly_slower_canary_with_two_stalls_is_not_a_latency_regression() -> None:
    # As measured on this 2-core host with two identical models: the new process ran 10-15%
    # slower at the median and two stalls doubled its p99 (the 2nd-largest of 200 values).
    canary = traffic("canary", 220, 2, latency_ms=2.6)
    canary[5]["latency_ms"] = canary[9]["latency_ms"] = 25.0
    latency = analyse_canary(traffic("main", 2000, 1, latency_ms=2.2), canary, AnalysisSettings()).checks[1]
    p_value = float(latency["detail"].rsplit("p=", 1)[1].rstrip(")"))
    assert p_value < SETTINGS.alpha  # Mann-Whitney alone would roll it back
    assert latency["passed"] and " / p95 " in latency["detail"], latency


def test_the_tail_is_judged_where_the_sample_measures_it() -> None:
    assert [tail_quantile(n) for n in (15, 200, 500, 1000, 50_000)] == [0.5, 0.95, 0.98, 0.99, 0.99]


def test_no_verdict_before_the_minimum_sample() -> None:
    verdict = analyse_canary(traffic("main", 900, 1), traffic("canary", 120, 2, error_rate=0.5), SETTINGS)
    assert verdict.decision == "hold" and "canary 120; need 300" in verdict.reasons[0]


def test_client_errors_do_not_count_against_a_version() -> None:
    canary = traffic("canary", 400, 2)
    canary += [{**canary[0], "request_id": f"bad-{i}", "status": 400, "error": "bad row"} for i in range(200)]
    assert analyse_canary(traffic("main", 900, 1), canary, SETTINGS).decision == "promote"


def test_a_shadow_that_agrees_is_promoted_and_one_that_disagrees_rolled_back() -> None:
    main = traffic("main", 500, 1, ids="r")
    agreeing = traffic("shadow", 500, 3, ids="r")
    verdict = analyse_shadow(main, agreeing, SETTINGS)
    assert verdict.decision == "promote", verdict.reasons
    assert "same decision on" in verdict.reasons[0]
    drifting = traffic("shadow", 500, 3, ids="r", score_shift=0.06)
    verdict = analyse_shadow(main, drifting, SETTINGS)
    assert verdict.decision == "rollback" and any(r.startswith("agreement: ") for r in verdict.reasons)


def test_logs_written_by_the_request_log_read_back_per_predictor(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for predictor, rows in (("main", traffic("main", 350, 1)), ("canary", traffic("canary", 320, 2))):
        log = RequestLog(store, "screening", predictor, flush_rows=100, flush_seconds=3600)
        log.log(rows)
        log.close()
    main, canary = read_logs(store, "screening", "main"), read_logs(store, "screening", "canary")
    assert len(main) == 350 and len(canary) == 320
    assert analyse_canary(main, canary, SETTINGS).decision == "promote"
    assert read_logs(store, "screening", "main", since_window="20261123T1100") == []
