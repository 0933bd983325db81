"""Scoring a split with the exported ONNX model: what serving will run, not the torch graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.common import calibration
from components.common.artifacts import split_key
from components.common.preprocessing import Preprocessing
from components.common.store import Store


def load_split(store: Store, splits: str, name: str) -> pd.DataFrame:
    """One split written by validate_data."""
    with store.local_copy(split_key(splits, name)) as path:
        return pd.read_parquet(path)


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
