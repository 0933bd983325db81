"""Scoring a split with the exported ONNX model: what serving will run, not the torch graph."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.common.artifacts import split_key
from components.common.modalities import INPUTS_FILE, Modality
from components.common.onnx_outputs import EMBEDDING, score_outputs
from components.common.store import Store
from components.common.tasks import Task


def load_split(store: Store, splits: str, name: str) -> pd.DataFrame:
    """One split written by validate_data."""
    with store.local_copy(split_key(splits, name)) as path:
        return pd.read_parquet(path)


def _run_onnx(
    store: Store,
    model_prefix: str,
    frame: pd.DataFrame,
    task: Task,
    modality: Modality,
    embedding: bool = False,
) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    inputs = modality.load_inputs(store.read_json(f"{model_prefix}/{INPUTS_FILE}"))
    session = ort.InferenceSession(
        store.read_bytes(f"{model_prefix}/model.onnx"), providers=["CPUExecutionProvider"]
    )
    graph = [o.name for o in session.get_outputs()]
    names = score_outputs(graph)  # the embedding only when asked
    extra = [EMBEDDING] if embedding and EMBEDDING in graph else []
    outputs = session.run(names + extra, modality.feed(inputs, frame))
    found = {name: task.output_array(out) for name, out in zip(names, outputs, strict=False)}
    if extra:
        found[EMBEDDING] = np.asarray(outputs[-1], dtype=np.float32)
    return found


def onnx_logits(
    store: Store, model_prefix: str, frame: pd.DataFrame, task: Task, modality: Modality
) -> np.ndarray:
    """Uncalibrated logits of the ONNX model for every row (binary (n,), multi-class (n, K))."""
    return _run_onnx(store, model_prefix, frame, task, modality)["logit"]


def onnx_logits_and_embeddings(
    store: Store, model_prefix: str, frame: pd.DataFrame, task: Task, modality: Modality, embedding: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """`onnx_logits`, and with `embedding` the graph's embedding output (rows, D) from the same
    run (None when not asked or the graph gives none)."""
    outputs = _run_onnx(store, model_prefix, frame, task, modality, embedding)
    return outputs["logit"], outputs.get(EMBEDDING)


def calibrated_scores(
    store: Store,
    model_prefix: str,
    record: dict[str, Any],
    frame: pd.DataFrame,
    task: Task,
    modality: Modality,
) -> tuple[np.ndarray, np.ndarray]:
    """(logits, calibrated probabilities) as serving computes them (`Task.probabilities`)."""
    outputs = _run_onnx(store, model_prefix, frame, task, modality)
    return outputs["logit"], task.probabilities(record, outputs)
