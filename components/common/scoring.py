"""Scoring a split with the exported ONNX model: what serving will run, not the torch graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

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


def onnx_logits(store: Store, model_prefix: str, frame: pd.DataFrame) -> np.ndarray:
    """Uncalibrated logits of the ONNX model for every row."""
    import onnxruntime as ort

    prep = Preprocessing.from_dict(store.read_json(f"{model_prefix}/preprocessing.json"))
    session = ort.InferenceSession(
        store.read_bytes(f"{model_prefix}/model.onnx"), providers=["CPUExecutionProvider"]
    )
    out = session.run(["logit"], {"features": prep.encode(frame)})[0]
    return np.asarray(out, dtype=np.float64).reshape(-1)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return np.exp(-np.logaddexp(0.0, -z))
