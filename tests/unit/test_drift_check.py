"""The drift reference and check: storage, settings, small windows and bad columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from components.common.drift_reference import EXACT_ROWS, SKETCH_LEVELS, Reference, build_reference
from components.common.store import LocalStore
from components.monitor.drift import ColumnSettings, DriftSettings, check_drift, wasserstein_to_sketch


def frame(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1, rows),
            "y": rng.exponential(1 + shift, rows),
            "city": rng.choice(["a", "b", "c"], rows),
        }
    )


def test_the_reference_round_trips_through_its_files(tmp_path: Path) -> None:
    data = frame(np.random.default_rng(0), 3000)
    data.loc[:9, "x"] = np.nan
    data.loc[10, "y"] = np.inf
    reference, sample = build_reference(data, ["city"], source="run-1")
    store = LocalStore(tmp_path)
    reference.save(store, "models/m/3", sample)
    assert store.list("models/m/3") == ["models/m/3/drift_reference.json", "models/m/3/drift_sample.parquet"]
    loaded = Reference.load(store, "models/m/3")
    assert loaded == reference
    x = loaded.column("x")
    assert (x.count, x.missing) == (2990, 10) and len(x.quantiles) == SKETCH_LEVELS
    assert x.std == pytest.approx(float(np.nanstd(data["x"])))
    assert loaded.column("y").missing == 1  # +inf is no value, as in Evidently
    assert loaded.column("city").counts == data["city"].value_counts().to_dict()
    assert x.exact == []  # over 1,000 rows: only the sketch
    assert pd.read_parquet(tmp_path / "models/m/3/drift_sample.parquet").shape == (3000, 3)


def test_a_small_reference_keeps_every_value_for_an_exact_ks() -> None:
    data = frame(np.random.default_rng(1), EXACT_ROWS)
    reference, _ = build_reference(data, ["city"])
    assert sorted(reference.column("x").exact) == sorted(data["x"].tolist())
    window = frame(np.random.default_rng(2), 500, shift=0.5)
    verdict = check_drift(reference, window)
    x = next(c for c in verdict.columns if c.column == "x")
    assert x.test == "ks" and x.score == pytest.approx(stats.ks_2samp(data["x"], window["x"])[1])


def test_missing_reference_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="retrain, or write one"):
        Reference.load(LocalStore(tmp_path), "models/m/1")


def test_text_in_a_numerical_column_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="list it under the categorical features"):
        build_reference(pd.DataFrame({"x": ["1", "two"]}), [])
    with pytest.raises(ValueError, match=r"columns \['z'\] are not in the data"):
        build_reference(pd.DataFrame({"x": [1.0]}), [], columns=["z"])


@pytest.mark.parametrize("rows", [7, 150, 1999, 2000, 2001, 50_000])
def test_wasserstein_against_the_sketch_matches_scipy(rows: int) -> None:
    rng = np.random.default_rng(rows)
    training = rng.normal(0, 2, 100_000)
    reference, _ = build_reference(pd.DataFrame({"x": training}), [])
    current = rng.normal(0.3, 2.5, rows)
    ours = wasserstein_to_sketch(np.asarray(reference.column("x").quantiles), current)
    assert ours == pytest.approx(stats.wasserstein_distance(training, current), abs=0.01)


def test_a_window_too_small_gets_no_verdict_and_says_why() -> None:
    reference, _ = build_reference(frame(np.random.default_rng(3), 5000), ["city"])
    verdict = check_drift(
        reference, frame(np.random.default_rng(4), 40, shift=3), DriftSettings(min_rows=100)
    )
    assert verdict.columns == [] and not verdict.dataset_drift
    assert verdict.too_small == "40 rows in the window; a verdict needs at least 100"


def test_per_column_settings_and_columns_without_values() -> None:
    rng = np.random.default_rng(5)
    reference, _ = build_reference(frame(rng, 5000), ["city"])
    window = frame(rng, 2000, shift=1.0).drop(columns=["city"])
    window["y"] = np.nan
    settings = DriftSettings(columns={"x": ColumnSettings(threshold=5.0)})
    verdict = check_drift(reference, window, settings)
    assert verdict.skipped == {
        "y": "no usable values in the window (all missing)",
        "city": "not in the window's rows",
    }
    (x,) = verdict.columns
    assert x.threshold == 5.0 and not x.drifted  # the shift is under the raised threshold
    ignored = check_drift(
        reference, frame(rng, 2000, 1.0), DriftSettings(columns={"x": ColumnSettings(ignore=True)})
    )
    assert ignored.skipped == {"x": "ignored by configuration"}
    with pytest.raises(ValueError, match="unknown drift test 'psi2'"):
        ColumnSettings(test="psi2")


def test_a_test_that_cannot_apply_is_named_not_guessed() -> None:
    rng = np.random.default_rng(6)
    reference, _ = build_reference(frame(rng, 5000), ["city"])
    verdict = check_drift(reference, frame(rng, 500), DriftSettings(columns={"x": ColumnSettings(test="ks")}))
    assert "K-S needs every reference value" in verdict.skipped["x"]
    verdict = check_drift(
        reference, frame(rng, 500), DriftSettings(columns={"x": ColumnSettings(test="chisquare")})
    )
    assert "kept no value counts" in verdict.skipped["x"]


def test_dataset_drift_follows_the_drift_share() -> None:
    rng = np.random.default_rng(8)
    reference, _ = build_reference(frame(rng, 5000), ["city"])
    window = frame(rng, 3000)
    window["x"] += 1.0  # one of three columns
    assert check_drift(reference, window).drifted_columns == ["x"]
    assert not check_drift(reference, window, DriftSettings(drift_share=0.5)).dataset_drift
    assert check_drift(reference, window, DriftSettings(drift_share=0.3)).dataset_drift


def test_categories_past_the_cap_are_compared_as_one_other_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy.spatial import distance

    from components.common import drift_reference as module

    monkeypatch.setattr(module, "MAX_CATEGORIES", 3)
    training = pd.DataFrame({"c": ["a"] * 3000 + ["b"] * 2000 + ["c"] * 600 + ["d"] * 400})
    profile, _ = build_reference(training, ["c"])
    column = profile.column("c")
    assert column.counts == {"a": 3000, "b": 2000, "__other__": 1000} and column.distinct == 4
    window = pd.DataFrame({"c": ["a"] * 500 + ["b"] * 300 + ["c"] * 100 + ["zz"] * 100})
    (result,) = check_drift(profile, window).columns
    expected = distance.jensenshannon(np.array([3000, 2000, 1000]) / 6000, np.array([500, 300, 200]) / 1000)
    assert result.test == "jensenshannon" and result.score == pytest.approx(expected)
