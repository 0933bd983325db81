"""Example data: the screening generator's promises and the bundled breast-cancer data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from examples.breast_cancer.data import write as write_breast_cancer
from examples.screening.generate import FEATURES, generate, write


def test_prevalence_and_label_noise() -> None:
    clean = generate(rows=40_000, prevalence=0.02, label_noise=0.0, seed=1)
    assert clean["label"].mean() == pytest.approx(0.02, abs=0.004)
    noisy = generate(rows=40_000, prevalence=0.02, label_noise=0.05, seed=1)
    # Flipping 5% of labels moves prevalence towards 0.5: 0.02 * 0.95 + 0.98 * 0.05 = 0.068.
    assert noisy["label"].mean() == pytest.approx(0.068, abs=0.006)


def test_same_seed_same_table_and_other_seed_differs() -> None:
    a, b = generate(rows=500, seed=3), generate(rows=500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not generate(rows=500, seed=4).equals(a)


def test_scanners_shift_rendering_not_disease() -> None:
    frame = generate(rows=30_000, prevalence=0.05, scanners={"A": 0.5, "B": 0.5}, label_noise=0.0, seed=2)
    by = frame.groupby("scanner")
    assert by["intensity_mean"].mean()["B"] - by["intensity_mean"].mean()["A"] > 40
    assert by["texture_contrast"].mean()["B"] > 1.4 * by["texture_contrast"].mean()["A"]
    assert by["label"].mean()["A"] == pytest.approx(by["label"].mean()["B"], abs=0.01)
    assert by["lesion_size_mm"].mean()["A"] == pytest.approx(by["lesion_size_mm"].mean()["B"], rel=0.05)


def test_features_carry_signal() -> None:
    frame = generate(rows=20_000, prevalence=0.1, label_noise=0.0, seed=5)
    sick, healthy = frame[frame.label == 1], frame[frame.label == 0]
    assert sick["lesion_size_mm"].mean() > healthy["lesion_size_mm"].mean() + 4
    assert set(FEATURES) <= set(frame.columns)
    assert frame["exam_time"].is_monotonic_increasing


def test_bad_parameters_are_named() -> None:
    with pytest.raises(ValueError, match="unknown scanners"):
        generate(rows=10, scanners={"Z": 1.0})
    with pytest.raises(ValueError, match="prevalence"):
        generate(rows=10, prevalence=1.5)


def test_write_both_formats(tmp_path: Path) -> None:
    csv = write(tmp_path / "s.csv", rows=200, seed=0)
    parquet = write(tmp_path / "s.parquet", rows=200, seed=0)
    assert len(pd.read_csv(csv)) == len(pd.read_parquet(parquet)) == 200


def test_breast_cancer_is_the_real_bundled_data(tmp_path: Path) -> None:
    frame = pd.read_csv(write_breast_cancer(tmp_path / "bc.csv"))
    assert frame.shape == (569, 31)
    assert int(frame["label"].sum()) == 212  # malignant cases in the Wisconsin data
