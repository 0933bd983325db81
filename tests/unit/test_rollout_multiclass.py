"""Multi-class rollout analysis: non-inferiority on macro ROC AUC, class floors, and score shifts
taken per class."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from components.common.artifacts import DatasetSchema
from components.common.registry import Registry
from components.common.rollout_config import RolloutAnalysis
from components.common.store import LocalStore
from components.common.tasks import MulticlassTask
from components.deploy.analysis import Verdict
from components.deploy.judge import Evidence, judge
from components.deploy.request_log import window_start
from components.deploy.rollout import start
from components.deploy.rollout_store import analyse_logs, labels_by_row, version_task
from tests.unit.test_rollout_analysis import NOW, rollout

CLASSES = ["benign", "atypical", "malignant"]
TASK = MulticlassTask("grade", None, CLASSES)
ROWS = 1500
HALF = ROWS // 2


def labels_of(seed: int = 0) -> np.ndarray:
    """Class indices: 60% benign, 30% atypical, 10% malignant."""
    return np.random.default_rng(seed).choice(3, ROWS, p=[0.6, 0.3, 0.1])


def model(y: np.ndarray, seed: int) -> np.ndarray:
    """Probabilities of a model that knows the class well, with its own noise."""
    logits = 2.0 * np.eye(3)[y] + np.random.default_rng(seed).normal(0, 1.0, (len(y), 3))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def scrambled(p: np.ndarray, seed: int) -> np.ndarray:
    """Each row's probabilities handed to the classes in a random order."""
    rng = np.random.default_rng(seed)
    return np.array([row[rng.permutation(3)] for row in p])


def records(p: np.ndarray, predictor: str, rows: range, decisions: np.ndarray | None = None) -> list[dict]:
    """Logged rows as MulticlassHead.log_fields writes them: a probability per class, the class index."""
    d = p.argmax(axis=1) if decisions is None else decisions
    return [
        {
            "request_id": f"q{i}",
            "row": 0,
            "predictor": predictor,
            "model_version": "1" if predictor == "main" else "2",
            "time": "2026-11-23T10:00:00+00:00",
            "status": 200,
            "latency_ms": 2.0,
            **{f"probability_{c}": float(p[i, k]) for k, c in enumerate(CLASSES)},
            "decision": int(d[i]),
        }
        for i in rows
    ]


def label_map(y: np.ndarray) -> dict[tuple[str, int], int]:
    return {(f"q{i}", 0): int(y[i]) for i in range(ROWS)}


GUARDED = RolloutAnalysis(min_requests=100)


def verdict(
    main: list[dict],
    candidate: list[dict],
    labels: dict | None = None,
    task: MulticlassTask = TASK,
    settings: RolloutAnalysis = GUARDED,
    strategy: str = "canary",
    reference: np.ndarray | None = None,
) -> Verdict:
    return judge(rollout(strategy), main, candidate, labels or {}, settings, NOW, task, Evidence(reference))


def test_the_ranking_score_is_scikit_learns_macro_one_vs_rest_auc() -> None:
    y = labels_of(3)
    p = np.round(model(y, 4), 1)  # rounded: many ties
    p = p / p.sum(axis=1, keepdims=True)
    assert TASK.ranking_score(y, p) == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert np.isnan(TASK.ranking_score(np.zeros(10, dtype=int), np.full((10, 3), 1 / 3)))


def test_a_scrambled_canary_is_rolled_back_once_labels_judge_and_an_equal_one_promoted() -> None:
    y = labels_of()
    main = records(model(y, 1), "main", range(HALF))
    labels = label_map(y)
    bad = verdict(main, records(scrambled(model(y, 2), 5), "canary", range(HALF, ROWS)), labels)
    assert bad.decision == "rollback" and bad.reasons[0].startswith("macro ROC AUC"), bad.reasons
    quality = next(c for c in bad.checks if c["check"] == "quality")
    assert quality["observed"] < -0.2 and f"{HALF} canary" in quality["detail"]
    good = verdict(main, records(model(y, 2), "canary", range(HALF, ROWS)), labels)
    assert good.decision == "promote", good.reasons
    by_name = {c["check"]: c for c in good.checks}
    assert by_name["quality"]["status"] == "pass" and by_name["score shift vs main"]["status"] == "info"


def test_a_paired_shadow_is_judged_on_the_same_labeled_rows() -> None:
    y = labels_of()
    main, labels = records(model(y, 1), "main", range(ROWS)), label_map(y)
    same = records(model(y, 1) * 0.98 + model(y, 2) * 0.02, "shadow", range(ROWS))  # a near-copy of main
    good = verdict(main, same, labels, strategy="shadow")
    assert good.decision == "promote", good.reasons
    quality = next(c for c in good.checks if c["check"] == "quality")
    assert f"the same {ROWS} labeled rows" in quality["detail"] and quality["status"] == "pass"
    shuffled = records(scrambled(model(y, 2), 5), "shadow", range(ROWS))
    bad = verdict(main, shuffled, labels, strategy="shadow")
    assert bad.decision == "rollback" and bad.reasons[0].startswith("macro ROC AUC"), bad.reasons
    unlabeled = verdict(main, shuffled, strategy="shadow")
    correlation = next(c for c in unlabeled.checks if c["check"] == "score correlation")
    assert unlabeled.decision == "hold" and correlation["status"] == "info" and correlation["observed"] < 0.5


def test_the_own_score_shift_is_taken_per_class() -> None:
    y = labels_of()
    main = records(model(y, 1), "main", range(HALF))
    reference = model(labels_of(7), 8)  # its validation answers
    settings = RolloutAnalysis(min_requests=100, label_share=0, on_no_labels="guardrails")
    same = verdict(
        main, records(model(y, 2), "canary", range(HALF, ROWS)), settings=settings, reference=reference
    )
    assert same.decision == "promote", same.reasons
    p = model(y, 2)
    p[:, 2] *= 4.0  # the malignant share inflated, the others renormalised
    p /= p.sum(axis=1, keepdims=True)
    shifted = verdict(main, records(p, "canary", range(HALF, ROWS)), settings=settings, reference=reference)
    shift = next(c for c in shifted.checks if c["check"] == "own score shift")
    assert shifted.decision == "rollback" and shift["status"] == "fail"
    assert "probability_malignant the largest of:" in shift["detail"]


def test_the_recall_floor_reads_the_class_the_operating_point_thresholds() -> None:
    y = labels_of()
    p = model(y, 2)
    others = p.copy()
    others[:, 2] = -1.0
    never_malignant = others.argmax(axis=1)  # a candidate that never calls the class of interest
    main, labels = records(model(y, 1), "main", range(HALF)), label_map(y)
    canary = records(p, "canary", range(HALF, ROWS), never_malignant)
    settings = RolloutAnalysis(min_requests=100, min_recall=0.4)
    macro = verdict(main, canary, labels, settings=settings)
    assert macro.decision == "promote", macro.reasons  # two classes of three found: macro recall passes
    assert next(c for c in macro.checks if c["check"] == "recall")["status"] == "pass"
    focused = TASK.for_point({"class": "malignant", "threshold": 0.3})
    assert focused.class_of_interest == "malignant" and TASK.class_of_interest is None
    judged = verdict(main, canary, labels, focused, settings)
    assert judged.decision == "rollback"
    recall = next(c for c in judged.checks if c["check"] == "recall")
    assert recall["observed"] == 0 and recall["detail"].startswith("recall of malignant 0.000")


def test_recall_of_the_class_of_interest_can_be_the_quality_metric() -> None:
    y = labels_of()
    main, labels = records(model(y, 1), "main", range(ROWS)), label_map(y)
    focused = TASK.for_point({"class": "malignant", "threshold": 0.3})
    settings = RolloutAnalysis(min_requests=100, quality_metric="recall", margin=0.1)
    never = model(y, 2)
    never[:, 2] = -1.0
    missing = records(model(y, 2), "shadow", range(ROWS), never.argmax(axis=1))
    bad = verdict(main, missing, labels, focused, settings, "shadow")
    assert bad.decision == "rollback" and bad.reasons[0].startswith("recall of malignant"), bad.reasons


def _register(store: LocalStore, point_class: str | None) -> None:
    schema = DatasetSchema(["x"], [], "grade", "", task="multiclass", classes=CLASSES)
    point = {"class": point_class, "threshold": None if point_class is None else 0.3, "target": None}
    files = {
        "model.onnx": b"weights",
        "schema.json": json.dumps(schema.to_dict()).encode(),
        "calibration.json": json.dumps({"method": "none", "operating_point": point}).encode(),
    }
    Registry(store).register("grades", files, {"run_id": "r"})


def test_a_multiclass_rollout_joins_its_labels_from_the_store(tmp_path: object) -> None:
    store = LocalStore(f"{tmp_path}/store")
    _register(store, None)
    _register(store, "malignant")
    rollout = start("grades", "canary", "1", "2", [10, 50, 100])
    assert version_task(store, "grades", "2").class_of_interest == "malignant"
    assert version_task(store, "grades", "1").class_of_interest is None
    y = labels_of()
    stamp = datetime.fromisoformat(rollout.step_started).isoformat(timespec="milliseconds")
    for predictor, version, rows in (
        ("main", "1", records(model(y, 1), "main", range(HALF))),
        ("canary", "2", records(scrambled(model(y, 2), 5), "canary", range(HALF, ROWS))),
    ):
        lines = [json.dumps({**r, "time": stamp, "model_version": version}) for r in rows]
        key = f"logs/grades/{predictor}/{window_start(stamp, 60)}/{uuid.uuid4().hex}.jsonl"
        store.write_text(key, "\n".join(lines) + "\n")
    names = [CLASSES[k] for k in y] + ["unknown", None]
    frame = pd.DataFrame({"request_id": [f"q{i}" for i in range(ROWS + 2)], "label": names})
    store.write_bytes("labels/grades/batch.csv", frame.to_csv(index=False).encode())
    joined = labels_by_row(store, "grades", version_task(store, "grades", "2"))
    assert joined == label_map(y)  # class names to indices; an unknown class and a missing label left out
    judged = analyse_logs(store, "grades", rollout, RolloutAnalysis(min_requests=100, min_recall=0.0))
    assert judged.decision == "rollback" and judged.reasons[0].startswith("macro ROC AUC"), judged.reasons
    recall = next(c for c in judged.checks if c["check"] == "recall")
    assert recall["detail"].startswith("recall of malignant")
