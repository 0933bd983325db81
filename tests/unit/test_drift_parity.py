"""The drift check against Evidently's DataDriftPreset on the same data: same tests, same verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.common.drift_reference import build_reference
from components.monitor.drift import check_drift

# Evidently's display names of the tests its preset picks, and which way each one drifts.
EVIDENTLY_TESTS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
}
CATEGORICAL = ["plan", "smoker"]
CASES = ["none", "mean_shift", "variance_shift", "category_shift", "new_category", "missing_surge"]


def sample(rng: np.random.Generator, rows: int, case: str = "none") -> pd.DataFrame:
    """Six columns of the kinds a tabular model sees; `case` shifts the current window."""
    shift = 0.6 if case == "mean_shift" else 0.0
    scale = 2.0 if case == "variance_shift" else 1.0
    plan_p = [0.4, 0.3, 0.2, 0.1] if case != "category_shift" else [0.1, 0.2, 0.3, 0.4]
    plans = rng.choice(["basic", "plus", "pro", "team"], rows, p=plan_p).astype(object)
    if case == "new_category":
        plans[rng.random(rows) < 0.2] = "enterprise"
    frame = pd.DataFrame(
        {
            "age": rng.normal(50 + 10 * shift, 10 * scale, rows),
            "income": rng.lognormal(10 + shift, 0.5 * scale, rows),
            "visits": rng.choice([0, 1, 2], rows, p=[0.5, 0.3, 0.2] if not shift else [0.3, 0.3, 0.4]),
            "flag": rng.choice([0, 1], rows, p=[0.9, 0.1] if not shift else [0.8, 0.2]),
            "plan": plans,
            "smoker": rng.choice(
                ["no", "yes"], rows, p=[0.8, 0.2] if case != "category_shift" else [0.6, 0.4]
            ),
        }
    )
    if case == "missing_surge":
        for column in frame.columns:
            frame.loc[rng.random(rows) < 0.4, column] = None
    return frame


def evidently_verdicts(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, tuple[str, float, bool]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numerical = [c for c in reference.columns if c not in CATEGORICAL]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"] != "evidently:metric_v2:ValueDrift":
            continue
        test, score, threshold = (
            EVIDENTLY_TESTS[config["method"]],
            float(metric["value"]),
            config["threshold"],
        )
        if test == "ks":
            drifted = score <= threshold
        elif test in ("chisquare", "z"):
            drifted = score < threshold
        else:
            drifted = score >= threshold
        out[config["column"]] = (test, score, drifted)
    return out


@pytest.mark.parametrize("reference_rows", [600, 4000])
def test_verdicts_agree_with_evidently_on_every_case(reference_rows: int) -> None:
    agree, total, disagreements, tests_seen = 0, 0, [], set()
    for seed in range(3):
        for case in CASES:
            rng = np.random.default_rng(1000 * seed + CASES.index(case) + reference_rows)
            reference, current = sample(rng, reference_rows), sample(rng, 1500, case)
            expected = evidently_verdicts(reference, current)
            profile, _ = build_reference(reference, CATEGORICAL)
            verdict = check_drift(profile, current)
            ours = {c.column: c for c in verdict.columns}
            assert set(ours) == set(expected), (verdict.skipped, case)
            for column, (test, score, drifted) in expected.items():
                tests_seen.add(test)
                assert ours[column].test == test, (case, column)  # the same test, always
                if test == "wasserstein":
                    assert abs(ours[column].score - score) < 0.005, (case, column, ours[column].score, score)
                else:
                    assert ours[column].score == pytest.approx(score, rel=1e-6, abs=1e-12), (case, column)
                total += 1
                if ours[column].drifted == drifted:
                    agree += 1
                else:
                    disagreements.append((seed, case, column, ours[column].score, score))
    assert agree / total >= 0.99, disagreements
    # Both sides of Evidently's 1,000-row switch were exercised.
    assert tests_seen == (
        {"ks", "chisquare", "z"} if reference_rows <= 1000 else {"wasserstein", "jensenshannon"}
    )


def test_shifts_are_caught_and_a_clean_window_is_not() -> None:
    rng = np.random.default_rng(7)
    profile, _ = build_reference(sample(rng, 20_000), CATEGORICAL)
    clean = check_drift(profile, sample(rng, 5000))
    assert clean.drifted_columns == [] and not clean.dataset_drift
    shifted = check_drift(profile, sample(rng, 5000, "mean_shift"))
    assert {"age", "income"} <= set(shifted.drifted_columns)
    assert shifted.dataset_drift == (shifted.drifted_share >= 0.5)
    new = check_drift(profile, sample(rng, 5000, "new_category"))
    assert new.drifted_columns == ["plan"]
