"""Scoring a split with the exported ONNX model: what serving will run, not the torch graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.common.artifacts import split_key
from components.common.preprocessing import Preprocessing
from components.common.store import Store
from components.common.tasks import Task


def load_split(store: Store, splits: str, name: str) -> pd.DataFrame:
    """One split written by validate_data."""
    with store.local_copy(split_key(splits, name)) as path:
        return pd.read_parquet(path)


def _run_onnx(store: Store, model_prefix: str, frame: pd.DataFrame, task: Task) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    prep = Preprocessing.from_dict(store.read_json(f"{model_prefix}/preprocessing.json"))
    session = ort.InferenceSession(
        store.read_bytes(f"{model_prefix}/model.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(names, {"features": prep.encode(frame)})
    return {name: task.output_array(out) for name, out in zip(names, outputs, strict=True)}


def onnx_logits(store: Store, model_prefix: str, frame: pd.DataFrame, task: Task) -> np.ndarray:
    """Uncalibrated logits of the ONNX model for every row (binary (n,), multi-class (n, K))."""
    return _run_onnx(store, model_prefix, frame, task)["logit"]


def calibrated_scores(
    store: Store, model_prefix: str, record: dict[str, Any], frame: pd.DataFrame, task: Task
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, calibrated probabilities) as serving computes them (`Task.probabilities`)."""
    outputs = _run_onnx(store, model_prefix, frame, task)
    return outputs["logit"], task.probabilities(record, outputs)
