"""The multi-class task: targets, loss, prior, decisions and calibration, checked independently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import log_loss

from components.common.tasks import MulticlassTask, task_for
from components.common.tasks import multiclass_calibration as mc


def test_classes_default_to_the_sorted_training_labels_and_unknown_labels_map_to_minus_one() -> None:
    task = MulticlassTask("grade").resolve(pd.Series(["malignant", "benign", "normal", "benign"]))
    assert task.classes == ["benign", "malignant", "normal"] and task.n_outputs == 3
    assert task.targets(pd.Series(["normal", "benign", "cyst"])).tolist() == [2, 0, -1]
    numeric = MulticlassTask("grade").resolve(pd.Series([2.0, 0.0, 1.0]))
    assert numeric.classes == ["0", "1", "2"]
    assert numeric.targets(pd.Series([1, 2])).tolist() == [1, 2]  # a CSV's 1 is a Parquet's 1.0
    fixed = task_for("multiclass", "grade", None, ["normal", "benign", "malignant"])
    assert fixed.resolve(pd.Series(["benign"])).classes == ["normal", "benign", "malignant"]


def test_the_loss_is_weighted_cross_entropy_and_the_prior_is_the_best_constant() -> None:
    task = MulticlassTask("y", classes=["a", "b", "c"])
    train = np.array([0] * 70 + [1] * 20 + [2] * 10)
    targets = np.array([0] * 50 + [1] * 30 + [2] * 20)
    logits = torch.randn(100, 3)
    for weighting in (False, True):
        loss = task.loss(train, weighting, torch.device("cpu"))
        weights = torch.tensor([100 / 210, 100 / 60, 100 / 30]) if weighting else None
        expected = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets), weight=weights)
        assert float(loss(logits, torch.from_numpy(targets))) == pytest.approx(float(expected), rel=1e-6)
        prior = task.prior_loss(train, targets, weighting)
        # No constant logit vector does better than the prior (random search around it).
        rng = np.random.default_rng(0)
        for _ in range(200):
            constant = torch.from_numpy(np.tile(rng.normal(size=3), (100, 1))).float()
            assert float(loss(constant, torch.from_numpy(targets))) >= prior - 1e-6
    assert task.prior_loss(train, targets, False) == pytest.approx(
        log_loss(targets, np.tile([0.5, 0.3, 0.2], (100, 1)))
    )


def test_decisions_are_argmax_or_the_class_of_interest_at_its_threshold() -> None:
    task = MulticlassTask("y", classes=["normal", "benign", "malignant"])
    p = np.array([[0.6, 0.3, 0.1], [0.5, 0.1, 0.4], [0.2, 0.5, 0.3]])
    assert task.decide(p, {}).tolist() == [0, 0, 1]
    assert task.decide(p, {"class": "malignant", "threshold": 0.25}).tolist() == [0, 2, 2]


def test_split_summaries_name_each_class_and_a_missing_class_is_degenerate() -> None:
    task = MulticlassTask("y", classes=["a", "b", "c"])
    summary = task.split_summary(np.array([0, 0, 1, 2]))
    assert summary == {"rows": 4, "share_a": 0.5, "share_b": 0.25, "share_c": 0.25}
    assert not task.degenerate(summary)
    assert task.degenerate(task.split_summary(np.array([0, 1, 1])))


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), logits 4z: the right ranking, far too sure (T = 4 fixes it)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4)) * 1.5
    y = (mc.softmax(z).cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return 4.0 * z, y


def test_temperature_scaling_cuts_top_label_ece_fourfold_and_keeps_argmax() -> None:
    fit_z, fit_y = _overconfident(4000, 1)
    test_z, test_y = _overconfident(4000, 2)
    record = mc.fit("temperature", fit_z, fit_y)
    assert record["params"]["temperature"] == pytest.approx(4.0, rel=0.1)
    before, after = mc.softmax(test_z), mc.apply(record, test_z)
    assert (before.argmax(axis=1) == after.argmax(axis=1)).all()
    ece_before = mc.summary(before, test_y, 15)["ece"]
    ece_after = mc.summary(after, test_y, 15)["ece"]
    assert ece_before >= 4 * ece_after, (ece_before, ece_after)


def test_auto_keeps_the_identity_when_the_model_is_already_calibrated() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(3000, 3)) * 2
    y = np.array([rng.choice(3, p=row) for row in mc.softmax(z)])  # labels drawn from the model
    chosen, scores = mc.fit_and_select("auto", z[:1500], y[:1500], z[1500:], y[1500:])
    assert set(scores) == {"temperature", "vector", "none"}
    assert scores[chosen["method"]] == min(scores.values())
    assert scores[chosen["method"]] <= scores["none"]


def test_vector_scaling_fits_per_class_scales_and_offsets() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(6000, 3))
    truth_a, truth_b = np.array([2.0, 1.0, 0.5]), np.array([0.3, -0.2, 0.0])
    y = np.array([rng.choice(3, p=row) for row in mc.softmax(z * truth_a + truth_b)])
    record = mc.fit("vector", z, y)
    a, b = np.asarray(record["params"]["a"]), np.asarray(record["params"]["b"])
    assert a == pytest.approx(truth_a, abs=0.25)
    assert (b - b.mean()) == pytest.approx(truth_b - truth_b.mean(), abs=0.15)  # b is shift-invariant


def test_calibration_measures_match_their_definitions() -> None:
    z, y = _overconfident(2000, 7)
    p = mc.softmax(z)
    measures = mc.summary(p, y, 15)
    assert measures["nll"] == pytest.approx(log_loss(y, p, labels=[0, 1, 2, 3]), rel=1e-9)
    assert measures["brier"] == pytest.approx(np.mean(((p - np.eye(4)[y]) ** 2).sum(axis=1)))
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == y
    bins = np.clip(np.ceil(confidence * 15).astype(int) - 1, 0, 14)
    ece = sum(
        abs(confidence[bins == b].mean() - correct[bins == b].mean()) * np.mean(bins == b)
        for b in range(15)
        if (bins == b).any()
    )
    assert measures["ece"] == pytest.approx(ece, abs=1e-9)
    assert 0 < measures["classwise_ece"] < 1 and measures["mce"] >= measures["ece"]


def test_prediction_drift_watches_each_class_probability_of_a_multiclass_version() -> None:
    from components.common.drift_reference import build_reference
    from components.monitor.check import answer_frame
    from components.monitor.drift import DriftSettings, check_drift

    task = MulticlassTask("grade", classes=["normal", "benign", "malignant"])
    rng = np.random.default_rng(9)
    test = mc.softmax(rng.normal(size=(2000, 3)))
    reference, _ = build_reference(pd.DataFrame(task.answer_columns(test, test.argmax(axis=1))), [])
    assert [c.name for c in reference.columns] == [
        "probability_normal",
        "probability_benign",
        "probability_malignant",
        "decision",
    ]
    same = mc.softmax(rng.normal(size=(800, 3)))
    shifted = mc.softmax(rng.normal(size=(800, 3)) + np.array([0.0, 0.0, 1.5]))  # malignant calls surge
    for served, drifted in ((same, False), (shifted, True)):
        logged = pd.DataFrame(task.answer_columns(served, served.argmax(axis=1))).assign(request_id="r")
        verdict = check_drift(reference, answer_frame(reference, logged), DriftSettings(0.5, 100))
        assert any(c.startswith("probability_") for c in verdict.drifted_columns) is drifted


def test_performance_decay_of_a_multiclass_version_is_judged_per_class_metric() -> None:
    from components.monitor.performance import check_performance

    task = MulticlassTask("grade", classes=["normal", "benign", "malignant"])
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, size=600)
    good = mc.softmax(np.eye(3)[y] * 3 + rng.normal(size=(600, 3)))
    card = task.scores(y, good, {}).point()
    labels = pd.Series(np.array(task.classes)[y])

    def joined(p: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"label": labels, **task.answer_columns(p, p.argmax(axis=1))})

    limits = {"macro_recall": 0.1, "recall_malignant": 0.1, "roc_auc": 0.05}
    steady = check_performance(joined(good), card, task, limits, 200, 10)
    assert not steady.decayed and {m.metric for m in steady.metrics} == set(limits)
    noise = mc.softmax(rng.normal(size=(600, 3)))
    decayed = check_performance(joined(noise), card, task, limits, 200, 10)
    assert decayed.decayed and all(m.decayed for m in decayed.metrics)
    assert decayed.positives == int(np.bincount(y).min())
    few = check_performance(joined(good), card, task, limits, 200, 10_000)  # too few of a class
    assert few.metrics == [] and "positive labels" in few.too_small
