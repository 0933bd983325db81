"""A multi-class model end to end: the wine example trains, calibrates, evaluates and registers,
and every stored metric is what scikit-learn computes from the stored predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from components.common.store import LocalStore
from tests.conftest import REPO
from tests.e2e.test_training_pipeline import kubeloop

pytestmark = pytest.mark.e2e

WINE = REPO / "examples" / "wine" / "config.yaml"
CLASSES = ["barolo", "grignolino", "barbera"]


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wine")
    store = root / "store"
    result = kubeloop(
        ["run", "--config", str(WINE), "--store", str(store), f"dataset.path={root / 'wine.csv'}"], root
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return store


def test_the_version_records_its_classes_and_the_files_a_reader_needs(wine: Path) -> None:
    version = wine / "models" / "wine" / "1"
    schema = json.loads((version / "schema.json").read_text())
    assert schema["task"] == "multiclass" and schema["classes"] == CLASSES
    for name in (
        "model.onnx",
        "calibration.json",
        "predictions.parquet",
        "confusion.png",
        "roc.png",
        "card.html",
    ):
        assert (version / name).is_file(), name
    calibration = json.loads((version / "calibration.json").read_text())
    assert calibration["method"] in ("temperature", "vector", "none")
    assert set(calibration["selection"]["candidates"]) == {"temperature", "vector", "none"}
    assert "classwise_ece" in calibration["after"]
    card = (version / "card.html").read_text()
    assert "recall_barbera" in card and "confusion matrix" in card


def test_every_metric_is_scikit_learns_on_the_stored_predictions(wine: Path) -> None:
    store = LocalStore(wine)
    metrics = store.read_json("models/wine/1/metrics.json")
    with store.local_copy("models/wine/1/predictions.parquet") as path:
        stored = pd.read_parquet(path)
    test = stored[stored["split"] == "test"]
    assert len(test) == metrics["rows"] == 45
    y = test["label"].to_numpy()
    p = test[[f"probability_{c}" for c in CLASSES]].to_numpy()
    d = np.array([CLASSES.index(c) for c in test["decision"]])
    assert np.allclose(p.sum(axis=1), 1.0) and (d == p.argmax(axis=1)).all()  # argmax decisions
    labels = [0, 1, 2]
    expected = {
        "accuracy": skm.accuracy_score(y, d),
        "balanced_accuracy": skm.balanced_accuracy_score(y, d),
        "macro_precision": skm.precision_score(y, d, average="macro", labels=labels, zero_division=0),
        "macro_recall": skm.recall_score(y, d, average="macro", labels=labels, zero_division=0),
        "macro_f1": skm.f1_score(y, d, average="macro", labels=labels, zero_division=0),
        "weighted_f1": skm.f1_score(y, d, average="weighted", labels=labels, zero_division=0),
        "roc_auc": skm.roc_auc_score(y, p, multi_class="ovr", labels=labels),
        "pr_auc": skm.average_precision_score(np.eye(3)[y], p, average="macro"),
        "log_loss": skm.log_loss(y, p, labels=labels),
        "brier": skm.brier_score_loss(y, p, labels=labels),
        "top_2_accuracy": skm.top_k_accuracy_score(y, p, k=2, labels=labels),
    }
    recall = skm.recall_score(y, d, average=None, labels=labels, zero_division=0)
    expected |= {f"recall_{c}": recall[i] for i, c in enumerate(CLASSES)}
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-9), name
    assert metrics["confusion"]["matrix"] == skm.confusion_matrix(y, d, labels=labels).tolist()
    assert metrics["roc_auc"] >= 0.95 and metrics["macro_recall"] >= 0.85  # the example's floors held


def test_the_seldon_class_serves_a_probability_per_class_and_the_decided_class(
    wine: Path, tmp_path: Path
) -> None:
    from tests.serving import logged_rows, microservice, post

    version = wine / "models" / "wine" / "1"
    stored = pd.read_parquet(version / "predictions.parquet")
    test = stored[stored["split"] == "test"]
    run = json.loads((version / "lineage.json").read_text())["run_id"]
    features = json.loads((version / "schema.json").read_text())["features"]
    rows = pd.read_parquet(wine / "runs" / run / "validate_data" / "splits" / "test.parquet")[features]
    logs = tmp_path / "logs"
    options = {"log_uri": str(logs), "predictor": "main", "flush_rows": 1, "flush_seconds": 0.2}
    with microservice(version, tmp_path, **options) as server:
        status, reply = post(server["base"], {"data": {"names": features, "ndarray": rows.values.tolist()}})
        assert status == 200, reply
        assert reply["data"]["names"] == [f"probability_{c}" for c in CLASSES] + ["decision"]
        assert reply["meta"]["tags"]["decision_rule"] == "argmax"
        served = np.array(reply["data"]["ndarray"])
        expected = test[[f"probability_{c}" for c in CLASSES]].to_numpy()
        np.testing.assert_allclose(served[:, :3], expected, rtol=1e-4, atol=1e-6)
        assert [CLASSES[int(d)] for d in served[:, 3]] == test["decision"].tolist()
        named = rows.iloc[:2].to_dict(orient="records")
        status, reply = post(server["base"], {"jsonData": {"instances": named}})
        assert status == 200, reply
        first = reply["jsonData"]["predictions"][0]
        assert set(first["probabilities"]) == set(CLASSES) and first["decision"] == test["decision"].iloc[0]
        status, reply = post(server["base"], {"data": {"names": features[:-1], "ndarray": [[1.0] * 12]}})
        assert status == 400, reply  # a bad request is a 4xx naming the problem, and the worker stays up
        status, _ = post(server["base"], {"data": {"names": features, "ndarray": rows.values.tolist()[:1]}})
        assert status == 200
    logged = [r for r in logged_rows(logs) if r.get("status") == 200]
    assert logged and {f"probability_{c}" for c in CLASSES} <= set(logged[0]) and "decision" in logged[0]
