"""Rollout analysis on labeled rows: a better candidate that disagrees with main passes, a worse one fails."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.deploy.analysis import AnalysisSettings, analyse_canary, analyse_shadow
from components.deploy.labeled import auc

ROWS = 1200


def population(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (5% positive), a drifted flag for half the rows, and the disease signal."""
    rng = np.random.default_rng(seed)
    y = (rng.random(ROWS) < 0.05).astype(int)
    drifted = rng.random(ROWS) < 0.5
    signal = y * 2.0 + rng.normal(0, 1, ROWS)
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
            "status": 200,
            "latency_ms": 2.0,
            "probability": float(scores[i]),
            "decision": int(scores[i] >= threshold),
        }
        for i in picked
    ]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def champion_and_candidates(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Main sees the drifted half shifted up (it flags nearly all of it); a retrained candidate
    does not; a broken one scores noise."""
    y, drifted, signal = population(seed)
    rng = np.random.default_rng(seed + 1)
    main = sigmoid(signal + 4.0 * drifted - 3)
    good = sigmoid(signal + rng.normal(0, 0.3, ROWS) - 3)
    broken = sigmoid(rng.normal(0, 1, ROWS) - 3)
    labels = {(f"q{i}", 0): int(y[i]) for i in range(ROWS)}
    return main, {"good": good, "broken": broken}, labels


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.2).astype(int)
    p = np.round(rng.random(500) + 0.3 * y, 1)  # rounded: many ties
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert np.isnan(auc(np.zeros(10, dtype=int), np.arange(10.0)))


def test_a_retrained_shadow_that_disagrees_with_a_drifted_main_is_promoted_once_labels_judge() -> None:
    main, candidates, labels = champion_and_candidates()
    main_rows = records("q", main, 0.2, "main")
    shadow_rows = records("q", candidates["good"], 0.1, "shadow")
    settings = AnalysisSettings(min_agreement=0.95, min_recall=0.75)
    without = analyse_shadow(main_rows, shadow_rows, settings)
    assert without.decision == "rollback" and "agreement" in without.reasons[0]  # the proxy blames it
    judged = analyse_shadow(main_rows, shadow_rows, settings, labels)
    assert judged.decision == "promote", judged.reasons
    by_name = {c["check"]: c for c in judged.checks}
    assert by_name["roc_auc"]["observed"] > 0 and by_name["recall"]["passed"]
    assert "not judged" in by_name["agreement"]["detail"]


def test_a_broken_shadow_is_rolled_back_on_its_labeled_rows() -> None:
    main, candidates, labels = champion_and_candidates()
    verdict = analyse_shadow(
        records("q", main, 0.2, "main"),
        records("q", candidates["broken"], 0.2, "shadow"),
        AnalysisSettings(),
        labels,
    )
    assert verdict.decision == "rollback" and verdict.reasons[0].startswith("roc_auc")


def test_a_recall_floor_stops_a_candidate_that_ranks_well_but_flags_too_few() -> None:
    main, candidates, labels = champion_and_candidates()
    strict = records("q", candidates["good"], 0.99, "shadow")  # a threshold almost nobody crosses
    verdict = analyse_shadow(
        records("q", main, 0.2, "main"), strict, AnalysisSettings(min_recall=0.75), labels
    )
    assert verdict.decision == "rollback" and any(r.startswith("recall") for r in verdict.reasons)


def test_too_few_labeled_positives_leave_the_decision_to_the_proxies() -> None:
    main, candidates, labels = champion_and_candidates()
    few = {k: v for k, v in list(labels.items())[:150]}  # under min_labeled
    verdict = analyse_shadow(
        records("q", main, 0.2, "main"),
        records("q", candidates["good"], 0.1, "shadow"),
        AnalysisSettings(),
        few,
    )
    assert verdict.decision == "rollback" and "agreement" in verdict.reasons[0]


def test_a_canary_is_judged_on_its_own_labeled_rows_against_mains() -> None:
    main, candidates, labels = champion_and_candidates()
    half = ROWS // 2
    main_rows = records("q", main, 0.2, "main", range(half))
    good = analyse_canary(
        main_rows,
        records("q", candidates["good"], 0.1, "canary", range(half, ROWS)),
        AnalysisSettings(),
        labels,
    )
    assert good.decision == "promote", good.reasons
    assert "not judged" in next(c for c in good.checks if c["check"] == "score shift")["detail"]
    broken = analyse_canary(
        main_rows,
        records("q", candidates["broken"], 0.2, "canary", range(half, ROWS)),
        AnalysisSettings(),
        labels,
    )
    assert broken.decision == "rollback" and any(r.startswith("roc_auc") for r in broken.reasons)
