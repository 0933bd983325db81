"""Calibration maps, measures and the operating point, against scikit-learn and known values."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper
from sklearn.calibration import _sigmoid_calibration, calibration_curve
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from components.common import calibration
from components.common.calibration import sigmoid
from components.common.tasks.binary_calibration import fit, fit_and_select, fit_platt, fit_temperature
from components.common.tasks.binary_measures import ece_mce, reliability, summary
from components.common.tasks.operating_point import (
    operating_point,
    threshold_for_recall,
    threshold_for_specificity,
    wilson,
)


def shifted_logits(seed: int, n: int = 40_000) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a class-weighted model: right ranking, but shifted up and too spread out."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(-3.0, 1.5, n)
    y = (rng.random(n) < sigmoid(true_logits)).astype(int)
    return 1.7 * true_logits + 4.0, y


def test_reliability_and_ece_match_scikit_learns_calibration_curve() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 3.0, 20_000)
    y = (rng.random(20_000) < np.clip(p * 1.3, 0, 1)).astype(int)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=15, strategy="uniform")
    curve = reliability(p, y, 15)
    np.testing.assert_allclose(curve["observed"], prob_true, rtol=1e-12)
    np.testing.assert_allclose(curve["predicted"], prob_pred, rtol=1e-12)
    counts, _ = np.histogram(p, bins=np.linspace(0, 1, 16))
    counts = counts[counts > 0]
    gaps = np.abs(prob_true - prob_pred)
    expected, worst = ece_mce(p, y, 15)
    assert expected == pytest.approx(float(np.sum(counts / len(p) * gaps)), rel=1e-12)
    assert worst == pytest.approx(float(gaps.max()), rel=1e-12)
    assert summary(p, y, 15)["brier"] == pytest.approx(float(np.mean((p - y) ** 2)))


def test_platt_matches_scikit_learns_sigmoid_calibration() -> None:
    z, y = shifted_logits(1, 5000)
    a, b = fit_platt(z, y)
    sk_a, sk_b = _sigmoid_calibration(z, y)  # scikit-learn fits p = 1 / (1 + exp(A f + B))
    assert a == pytest.approx(-sk_a, abs=2e-3) and b == pytest.approx(-sk_b, abs=2e-3)


def test_isotonic_record_predicts_as_scikit_learn_does() -> None:
    z, y = shifted_logits(2, 5000)
    record = fit("isotonic", z, y)
    model = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(z, y)
    fresh = np.concatenate([np.random.default_rng(3).normal(0, 4, 2000), [-50.0, 50.0]])
    np.testing.assert_allclose(calibration.apply(record, fresh), model.predict(fresh), atol=1e-12)


def test_auto_keeps_the_lowest_validation_nll_and_a_scale_cannot_fix_a_shift() -> None:
    z, y = shifted_logits(4)
    chosen, nlls = fit_and_select("auto", z[:20_000], y[:20_000], z[20_000:], y[20_000:])
    assert set(nlls) == {"temperature", "platt", "isotonic", "none"}
    assert nlls[chosen["method"]] == min(nlls[m] for m in ("temperature", "platt", "isotonic"))
    # The logits are shifted by +4: dividing by T cannot move them back, an intercept can.
    assert chosen["method"] != "temperature" and nlls["platt"] < nlls["temperature"] < nlls["none"]
    only, _ = fit_and_select("temperature", z[:20_000], y[:20_000], z[20_000:], y[20_000:])
    assert only["method"] == "temperature"


def tiny_onnx(weights: np.ndarray) -> bytes:
    """features (batch, n) -> logit (batch, 1): a linear model, enough to test graph surgery."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "w"], ["logit"])],
        "tiny",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", len(weights)])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor("w", TensorProto.FLOAT, [len(weights), 1], weights.tolist())],
    )
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def test_temperature_folded_into_onnx_serves_the_same_probabilities() -> None:
    model = tiny_onnx(np.array([0.5, -1.5, 2.0]))
    folded = calibration.fold_temperature(model, 2.5)
    onnx.checker.check_model(onnx.load_from_string(folded))
    x = np.random.default_rng(5).normal(0, 2, (500, 3)).astype(np.float32)
    plain = ort.InferenceSession(model).run(["logit"], {"features": x})[0].ravel()
    logit, probability = ort.InferenceSession(folded).run(["logit", "probability"], {"features": x})
    np.testing.assert_array_equal(logit.ravel(), plain)  # the raw logit is kept for recalibration
    record = {"method": "temperature", "params": {"temperature": 2.5}}
    np.testing.assert_allclose(probability.ravel(), calibration.apply(record, plain), atol=1e-6)


def test_applying_a_bad_record_names_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown calibration method 'beta'"):
        calibration.apply({"method": "beta", "params": {}}, np.zeros(3))
    with pytest.raises(ValueError, match="lacks parameter 'b'"):
        calibration.apply({"method": "platt", "params": {"a": 1.0}}, np.zeros(3))


def test_an_old_record_reads_as_a_temperature_map_at_the_default_threshold() -> None:
    record = calibration.normalise({"method": "temperature", "temperature": 2.0}, 0.5)
    assert record["params"] == {"temperature": 2.0} and record["operating_point"]["threshold"] == 0.5


def overfit_logits() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Logits of an MLP trained far past the point of fitting noise, on three held-apart splits."""
    from components.train.model import TabularMLP

    rng = np.random.default_rng(6)
    n, d = 6000, 20
    x = rng.normal(0, 1, (n, d)).astype(np.float32)
    signal = x[:, :4] @ np.array([1.0, -0.8, 0.6, 0.5], dtype=np.float32)
    y = (rng.random(n) < sigmoid(signal)).astype(np.float32)
    torch.manual_seed(0)
    model = TabularMLP(np.zeros(d, np.float32), np.ones(d, np.float32), [256, 256], dropout=0.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[:1000]), torch.from_numpy(y[:1000])
    for _ in range(400):  # full batch, no weight decay, no dropout, no early stopping: it memorises
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xt).squeeze(1), yt)
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).squeeze(1).double().numpy()
    parts = {"train": slice(0, 1000), "calibration": slice(1000, 3000), "test": slice(3000, n)}
    return {k: logits[s] for k, s in parts.items()}, {k: y[s].astype(int) for k, s in parts.items()}


def test_temperature_scaling_fixes_an_overfit_model_without_changing_its_ranking() -> None:
    logits, ys = overfit_logits()
    assert float(np.mean((logits["train"] > 0) == ys["train"])) > 0.99  # it did memorise
    t = fit_temperature(logits["calibration"], ys["calibration"])
    assert t > 2  # over-confident: the logits need shrinking
    raw, scaled = sigmoid(logits["test"]), sigmoid(logits["test"] / t)
    before, after = ece_mce(raw, ys["test"])[0], ece_mce(scaled, ys["test"])[0]
    assert before >= 4 * after, (before, after)
    assert roc_auc_score(ys["test"], scaled) == roc_auc_score(ys["test"], raw)
    assert np.array_equal(raw >= 0.5, scaled >= 0.5)  # every decision at 0.5 (the argmax) is kept


def test_recall_threshold_is_the_highest_that_meets_the_target() -> None:
    rng = np.random.default_rng(7)
    p, y = rng.random(3000), (rng.random(3000) < 0.1).astype(int)
    for target in (0.5, 0.9, 0.95, 1.0):
        t = threshold_for_recall(p, y, target)
        assert np.mean(p[y == 1] >= t) >= target
        assert np.mean(p[y == 1] >= np.nextafter(t, 2)) < target


def test_specificity_threshold_is_the_lowest_that_meets_the_target() -> None:
    rng = np.random.default_rng(8)
    p, y = rng.random(3000), (rng.random(3000) < 0.1).astype(int)
    for target in (0.5, 0.9, 0.99):
        t = threshold_for_specificity(p, y, target)
        assert np.mean(p[y == 0] < t) >= target
        assert np.mean(p[y == 0] < np.nextafter(t, -1)) < target


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson(8, 10, 0.95)  # Newcombe (1998), table I: 0.4902 - 0.9433
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0


def test_operating_point_reports_the_target_and_both_splits() -> None:
    rng = np.random.default_rng(9)
    p, y = rng.random(4000), (rng.random(4000) < 0.2).astype(int)
    point = operating_point(("validation", p[:2000], y[:2000]), ("test", p[2000:], y[2000:]), 0.9, None, 0.5)
    assert point["target"] == {"recall": 0.9} and point["chosen_on"] == "validation"
    assert point["rates"]["validation"]["recall"] >= 0.9
    low, high = point["rates"]["test"]["recall_interval"]
    assert low <= point["rates"]["test"]["recall"] <= high
    fixed = operating_point(("validation", p, y), ("test", p, y), None, None, 0.42)
    assert fixed["threshold"] == 0.42 and fixed["target"] is None
