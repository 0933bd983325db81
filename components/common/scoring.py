"""Scoring a split with the exported ONNX model: what serving will run, not the torch graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.common import calibration
from components.common.data import is_positive
from components.common.preprocessing import Preprocessing
from components.common.store import Store

METRICS = (
    "recall",
    "specificity",
    "precision",
    "npv",
    "f1",
    "balanced_accuracy",
    "accuracy",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
)
"""The held-out metrics, in report order (recall is sensitivity, precision is PPV)."""


def load_split(store: Store, splits: str, name: str) -> pd.DataFrame:
    """One split written by validate_data."""
    with store.local_copy(f"{splits}/splits/{name}.parquet") as path:
        return pd.read_parquet(path)


def labels(frame: pd.DataFrame, schema: dict[str, Any]) -> np.ndarray:
    """1 for the positive label value, else 0."""
    return is_positive(frame[schema["label"]], schema["positive_value"]).astype(np.int64)


def _run_onnx(store: Store, model_prefix: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    prep = Preprocessing.from_dict(store.read_json(f"{model_prefix}/preprocessing.json"))
    session = ort.InferenceSession(
        store.read_bytes(f"{model_prefix}/model.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(names, {"features": prep.encode(frame)})
    return {
        name: np.asarray(out, dtype=np.float64).reshape(-1) for name, out in zip(names, outputs, strict=True)
    }


def onnx_logits(store: Store, model_prefix: str, frame: pd.DataFrame) -> np.ndarray:
    """Uncalibrated logits of the ONNX model for every row."""
    return _run_onnx(store, model_prefix, frame)["logit"]


def calibrated_scores(
    store: Store, model_prefix: str, record: dict[str, Any], frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, calibrated probabilities) as serving computes them (`calibration.probabilities`)."""
    outputs = _run_onnx(store, model_prefix, frame)
    return outputs["logit"], calibration.probabilities(record, outputs)
