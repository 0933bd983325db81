"""Multi-class settings: what the config accepts, what it refuses, and the label gate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from components.common.config import DatasetConfig, KubeloopConfig, ValidationConfig
from components.validate_data.checks import run_checks


def config(**sections: Any) -> KubeloopConfig:
    dataset = {"path": "x.csv", "label": "grade", "task": "multiclass", **sections.pop("dataset", {})}
    return KubeloopConfig.model_validate({"name": "grades", "dataset": dataset, **sections})


def test_a_multiclass_config_with_floors_per_class_and_a_class_target_is_accepted() -> None:
    cfg = config(
        dataset={"classes": ["normal", "benign", "malignant"]},
        evaluation={
            "floors": {"recall_malignant": 0.9, "macro_f1": 0.7},
            "max_regression": {"roc_auc": 0.02},
        },
        calibration={"method": "vector", "target_recall": {"class": "malignant", "value": 0.95}},
    )
    task = cfg.dataset.make_task()
    assert task.classes == ["normal", "benign", "malignant"] and task.class_of_interest is None
    assert cfg.calibration.target_recall.class_ == "malignant"  # type: ignore[union-attr]
    assert KubeloopConfig.from_json(cfg.to_json()) == cfg  # the alias survives the step's JSON


def test_settings_that_do_not_fit_the_task_are_all_named_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        config(
            dataset={"classes": ["normal", "benign"]},
            evaluation={"floors": {"specificity": 0.9}, "primary_metric": "recall"},
            calibration={"method": "platt", "target_recall": {"class": "cyst", "value": 0.9}},
        )
    text = str(caught.value)
    for fragment in (
        "evaluation.floors names ['specificity']",
        "evaluation.primary_metric 'recall'",
        "calibration.method 'platt' does not apply to a multiclass task",
        "target_recall.class 'cyst' is not in dataset.classes",
    ):
        assert fragment in text
    with pytest.raises(ValidationError, match="needs a class in a multiclass task"):
        config(calibration={"target_recall": 0.9})
    with pytest.raises(ValidationError, match="needs task: multiclass"):
        DatasetConfig(path="x.csv", label="y", classes=["a", "b"])
    with pytest.raises(ValidationError, match="calibration.method 'vector' does not apply to a binary task"):
        KubeloopConfig.model_validate(
            {"name": "b", "dataset": {"path": "x.csv", "label": "y"}, "calibration": {"method": "vector"}}
        )


def test_a_label_outside_the_classes_fails_the_gate_naming_the_value_and_its_rows() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "grade": rng.choice(["normal", "benign"], 300)})
    frame.loc[[3, 50, 99], "grade"] = "cyst"
    dataset = DatasetConfig(path="x.csv", label="grade", task="multiclass", classes=["normal", "benign"])
    failed = [r for r in run_checks(frame, dataset, ValidationConfig()) if not r.passed]
    assert [(r.check, r.column) for r in failed] == [("label_classes", "grade")]
    assert failed[0].observed == "'cyst' in 3 rows" and "dataset.classes" in failed[0].expected
    numeric = frame.assign(grade=np.where(frame["grade"] == "normal", 0, 1))
    passing = DatasetConfig(path="x.csv", label="grade", task="multiclass", classes=["0", "1"])
    assert all(r.passed for r in run_checks(numeric, passing, ValidationConfig()))  # 0 is class "0"
