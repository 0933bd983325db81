"""The smoke test passes a model that learns and stops, with the reason, one that does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.common.artifacts import DatasetSchema
from components.common.config import TrainingConfig
from components.common.step import GateFailed
from components.common.tasks import BinaryTask
from components.train.smoke import SmokeTestFailed, run_smoke_test, stratified_subset
from examples.screening.generate import generate

FEATURES = ["age", "breast_density", "lesion_size_mm", "margin_irregularity", "intensity_mean", "scanner"]
SCHEMA = DatasetSchema(features=FEATURES, categorical=["scanner"], label="label", positive_value=1)
CONFIG = TrainingConfig(hidden_sizes=[32, 16], batch_size=128, learning_rate=0.003, smoke_test_rows=1024)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = generate(rows=8000, prevalence=0.05, scanners={"A": 0.7, "B": 0.3}, seed=11)
    return frame.iloc[:6000], frame.iloc[6000:]


def test_a_learning_model_passes_and_reports_its_losses(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    lines: list[str] = []
    result = run_smoke_test(CONFIG, *frames, SCHEMA, lines.append)
    assert result["smoke_train_loss_after"] < result["smoke_train_loss_before"] * 0.99
    assert result["smoke_val_loss_after"] < result["smoke_val_loss_before"]
    assert result["smoke_val_loss_after"] < result["smoke_val_loss_constant"]
    assert lines[-1].startswith("smoke test passed")


def test_a_learning_rate_too_small_to_learn_fails_on_the_training_loss(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    with pytest.raises(SmokeTestFailed, match=r"training loss did not decrease.*learning_rate \(1e-09\)"):
        run_smoke_test(CONFIG.model_copy(update={"learning_rate": 1e-9}), *frames, SCHEMA, lambda _: None)


def test_non_finite_features_fail_with_a_pointer_to_the_data(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, validation = frames
    broken = train.assign(age=np.where(np.arange(len(train)) % 2 == 0, np.inf, train["age"]))
    with pytest.raises(SmokeTestFailed, match="loss is not finite.*NaN or infinite feature values"):
        run_smoke_test(CONFIG, broken, validation, SCHEMA, lambda _: None)


def test_labels_that_do_not_line_up_fail_on_the_validation_loss(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, validation = frames
    flipped = validation.assign(label=1 - validation["label"])  # what training learns, reversed
    with pytest.raises(SmokeTestFailed, match="training loss fell.*validation loss.*base rate") as failure:
        run_smoke_test(CONFIG, train, flipped, SCHEMA, lambda _: None)
    assert isinstance(failure.value, GateFailed)  # the step records gate_failed, not a crash


def test_the_subset_keeps_label_shares_and_some_of_each_class() -> None:
    frame = pd.DataFrame({"x": np.arange(10_000), "label": (np.arange(10_000) < 30).astype(int)})
    subset = stratified_subset(frame, frame["label"].to_numpy(), 1000, seed=0)
    assert len(subset) == 1000 - 3 + 8  # 997 negatives, and 8 positives rather than 3
    assert subset["label"].sum() == 8 and subset.index.is_unique
    assert stratified_subset(frame, frame["label"].to_numpy(), 20_000, seed=0) is frame


def test_the_binary_prior_loss_is_the_minimum_over_constant_predictions() -> None:
    y_train = np.array([1.0] * 10 + [0.0] * 90)
    y = np.array([1.0] * 5 + [0.0] * 95)
    for weighting in (True, False):
        best = BinaryTask("label", 1).prior_loss(y_train, y, weighting)
        weight = 9.0 if weighting else 1.0
        grid = np.linspace(0.001, 0.999, 999)
        losses = -(weight * y.mean() * np.log(grid) + (1 - y.mean()) * np.log(1 - grid))
        assert best == pytest.approx(losses.min(), rel=1e-4)
