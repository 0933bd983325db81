"""ONNX export: parity with torch holds for a good export and breaks for a corrupted one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from components.common.config import TrainingConfig
from components.train.recipe import fit
from components.train.step import PARITY_TOLERANCE, export_onnx, parity_gap
from tests.conftest import encoded_screening


def test_export_keeps_parity_and_a_corrupted_graph_is_caught(tmp_path: Path) -> None:
    prep, x, y = encoded_screening(rows=1200, seed=6)
    model, _ = fit(
        TrainingConfig(epochs=2, hidden_sizes=[8]),
        x[:1000],
        y[:1000],
        x[1000:],
        y[1000:],
        prep,
        log=lambda _: None,
    )
    path = tmp_path / "model.onnx"
    export_onnx(model, x.shape[1], path)
    assert parity_gap(model, path, x[1000:]) <= PARITY_TOLERANCE
    graph = onnx.load(str(path))
    weights = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    corrupted = numpy_helper.to_array(weights) + 0.05
    weights.CopyFrom(numpy_helper.from_array(corrupted.astype(np.float32), weights.name))
    onnx.save(graph, str(path))
    assert parity_gap(model, path, x[1000:]) > PARITY_TOLERANCE
