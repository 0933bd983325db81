"""Rollout quality on labeled rows: non-inferiority with the burden of proof on the candidate; a
better candidate that disagrees with a drifted main passes, a worse one fails, and too few labels
decide nothing."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.common.tasks.ranking import auc_influence, roc_auc
from components.deploy.analysis import AnalysisSettings
from tests.unit.test_rollout_analysis import verdict_of

ROWS = 4000


def population(seed: int = 0, rows: int = ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (5% positive), a drifted flag for half the rows, and the disease signal."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.05).astype(int)
    drifted = rng.random(rows) < 0.5
    signal = y * 2.0 + rng.normal(0, 1, rows)
    return y, drifted, signal


def records(
    prefix: str, scores: np.ndarray, threshold: float, predictor: str, rows: range | None = None
) -> list[dict]:
    picked = rows if rows is not None else range(len(scores))
    return [
        {
            "request_id": f"{prefix}{i}",
            "row": 0,
            "predictor": predictor,
            "model_version": "1" if predictor == "main" else "2",
            "time": "2026-11-23T10:00:00+00:00",
            "status": 200,
            "latency_ms": 2.0,
            "probability": float(scores[i]),
            "decision": int(scores[i] >= threshold),
        }
        for i in picked
    ]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def champion_and_candidates(
    seed: int = 0, rows: int = ROWS
) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Main sees the drifted half shifted up (it flags nearly all of it); a retrained candidate
    does not; a broken one scores noise."""
    y, drifted, signal = population(seed, rows)
    rng = np.random.default_rng(seed + 1)
    main = sigmoid(signal + 4.0 * drifted - 3)
    good = sigmoid(signal + rng.normal(0, 0.3, rows) - 3)
    broken = sigmoid(rng.normal(0, 1, rows) - 3)
    labels = {(f"q{i}", 0): int(y[i]) for i in range(rows)}
    return main, {"good": good, "broken": broken}, labels


def test_auc_and_its_influence_match_sklearn_and_the_bootstrap() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.1).astype(int)
    p = np.round(rng.random(2000) + 0.3 * y, 1)  # rounded: many ties
    value, influence = auc_influence(y, p)
    assert value == pytest.approx(roc_auc_score(y, p)) == pytest.approx(roc_auc(y, p))
    resampled = [roc_auc(y[i], p[i]) for i in rng.integers(0, len(y), (400, len(y)))]
    assert np.sum(influence**2) == pytest.approx(np.var(resampled), rel=0.25)  # DeLong's variance
    assert np.isnan(auc_influence(np.zeros(10, dtype=int), np.arange(10.0))[0])


GUARDRAILS_PASS = AnalysisSettings(min_requests=100)


def test_a_retrained_shadow_that_disagrees_with_a_drifted_main_is_promoted_once_labels_judge() -> None:
    main, candidates, labels = champion_and_candidates()
    main_rows = records("q", main, 0.2, "main")
    shadow_rows = records("q", candidates["good"], 0.1, "shadow")
    settings = AnalysisSettings(min_requests=100, min_recall=0.75)
    without = verdict_of(main_rows, shadow_rows, settings, "shadow")
    assert without.decision == "hold", without.reasons  # no labels: disagreement alone decides nothing
    judged = verdict_of(main_rows, shadow_rows, settings, "shadow", labels)
    assert judged.decision == "promote", judged.reasons
    by_name = {c["check"]: c for c in judged.checks}
    assert by_name["quality"]["status"] == "pass" and by_name["quality"]["bounds"][0] > -0.02
    assert "on the same" in by_name["quality"]["detail"]
    assert by_name["recall"]["status"] == "pass"
    assert by_name["agreement"]["status"] == "info" and by_name["agreement"]["observed"] < 0.8


def test_a_broken_shadow_is_rolled_back_on_its_labeled_rows() -> None:
    main, candidates, labels = champion_and_candidates()
    verdict = verdict_of(
        records("q", main, 0.2, "main"),
        records("q", candidates["broken"], 0.2, "shadow"),
        GUARDRAILS_PASS,
        "shadow",
        labels,
    )
    assert verdict.decision == "rollback" and verdict.reasons[0].startswith("ROC AUC"), verdict.reasons
    assert "worse than main beyond the margin" in verdict.reasons[0]


def test_a_slightly_worse_candidate_is_not_promoted_on_thin_evidence() -> None:
    # Worse by half the margin: neither shown non-inferior nor shown harmful on 4,000 rows.
    _, candidates, labels = champion_and_candidates()
    _, _, signal = population()
    slightly = sigmoid(signal * 0.93 + np.random.default_rng(5).normal(0, 0.35, ROWS) - 3)
    verdict = verdict_of(
        records("q", candidates["good"], 0.1, "main"),
        records("q", slightly, 0.1, "shadow"),
        GUARDRAILS_PASS,
        "shadow",
        labels,
    )
    quality = next(c for c in verdict.checks if c["check"] == "quality")
    assert verdict.decision == "hold" and quality["status"] == "pending", quality
    assert verdict.needs and verdict.needs["labeled_rows"] > ROWS
    assert "need ~" in verdict.reasons[-1] and "holding the shadow" in verdict.reasons[-1]


def test_a_recall_floor_stops_a_candidate_that_ranks_well_but_flags_too_few() -> None:
    main, candidates, labels = champion_and_candidates()
    strict = records("q", candidates["good"], 0.99, "shadow")  # a threshold almost nobody crosses
    verdict = verdict_of(
        records("q", main, 0.2, "main"),
        strict,
        AnalysisSettings(min_requests=100, min_recall=0.75),
        "shadow",
        labels,
    )
    assert verdict.decision == "rollback" and any(r.startswith("recall") for r in verdict.reasons)


def test_too_few_labeled_positives_decide_nothing() -> None:
    main, candidates, labels = champion_and_candidates()
    few = dict(list(labels.items())[:150])  # a handful of positives
    verdict = verdict_of(
        records("q", main, 0.2, "main"),
        records("q", candidates["broken"], 0.1, "shadow"),
        GUARDRAILS_PASS,
        "shadow",
        few,
    )
    assert verdict.decision == "hold" and "the bounds need 20" in verdict.reasons[0], verdict.reasons


def test_a_canary_is_judged_on_its_own_labeled_rows_against_mains() -> None:
    rows = 3 * ROWS  # unpaired rows carry less evidence than a shadow's paired ones
    main, candidates, labels = champion_and_candidates(rows=rows)
    half = rows // 2
    main_rows = records("q", main, 0.2, "main", range(half))
    good = verdict_of(
        main_rows,
        records("q", candidates["good"], 0.1, "canary", range(half, rows)),
        GUARDRAILS_PASS,
        labels=labels,
    )
    quality = next(c for c in good.checks if c["check"] == "quality")
    assert "each side's own" in quality["detail"] and quality["status"] != "fail", quality
    assert next(c for c in good.checks if c["check"] == "score shift vs main")["status"] == "info"
    broken = verdict_of(
        main_rows,
        records("q", candidates["broken"], 0.2, "canary", range(half, rows)),
        GUARDRAILS_PASS,
        labels=labels,
    )
    assert broken.decision == "rollback" and any(r.startswith("ROC AUC") for r in broken.reasons)
