"""ONNX export: parity with torch holds for a good export and breaks for a corrupted one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from components.common.config import TrainingConfig
from components.common.tasks import BinaryTask
from components.train.step import PARITY_TOLERANCE, export_onnx, parity_gap
from tests.conftest import fit_screening
from tests.specs import fit, tabular_spec

TASK = BinaryTask("label", 1)


def test_export_keeps_parity_and_a_corrupted_graph_is_caught(tmp_path: Path) -> None:
    model, _, x, _ = fit_screening(
        TrainingConfig(epochs=2, hidden_sizes=[8]), rows=1200, seed=6, train_rows=1000
    )
    path = tmp_path / "model.onnx"
    export_onnx(model, torch.zeros(2, x.shape[1]), path)
    assert parity_gap(model, path, x[1000:], TASK) <= PARITY_TOLERANCE
    graph = onnx.load(str(path))
    weights = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    corrupted = numpy_helper.to_array(weights) + 0.05
    weights.CopyFrom(numpy_helper.from_array(corrupted.astype(np.float32), weights.name))
    onnx.save(graph, str(path))
    assert parity_gap(model, path, x[1000:], TASK) > PARITY_TOLERANCE


def test_categorical_embeddings_learn_export_and_treat_unseen_codes_as_zero(tmp_path: Path) -> None:
    import pandas as pd
    import torch
    from sklearn.metrics import roc_auc_score

    from components.common.preprocessing import Preprocessing
    from examples.screening.generate import generate

    frame = generate(rows=3000, prevalence=0.1, scanners={"A": 0.5, "B": 0.3, "C": 0.2}, seed=12)
    features = [c for c in frame.columns if c not in ("exam_id", "exam_time", "site_id", "label")]
    prep = Preprocessing.fit(frame.iloc[:2500], features, ["scanner"], encoding="embedding")
    assert prep.encoded_names[-1] == "scanner#code" and prep.cardinalities == [4]
    x, y = prep.encode(frame), frame["label"].to_numpy(np.float32)
    assert set(np.unique(x[:, -1])) == {1.0, 2.0, 3.0}
    unseen = prep.encode(frame.iloc[:3].assign(scanner="Z"))
    assert (unseen[:, -1] == 0).all()

    cfg = TrainingConfig(epochs=4, hidden_sizes=[16], categorical_encoding="embedding", embedding_size=3)
    model, _ = fit(
        cfg,
        x[:2500],
        y[:2500],
        x[2500:],
        y[2500:],
        tabular_spec(prep),
        task=BinaryTask("label", 1),
        log=lambda _: None,
    )
    assert [tuple(e.weight.shape) for e in model.embeddings] == [(4, 3)]
    assert torch.equal(model.embeddings[0].weight[0], torch.zeros(3))  # unseen: a zero vector
    with torch.no_grad():
        scores = model(torch.from_numpy(x[2500:])).numpy().reshape(-1)
    assert roc_auc_score(y[2500:], scores) > 0.75
    path = tmp_path / "model.onnx"
    export_onnx(model, torch.zeros(2, x.shape[1]), path)
    rows = np.concatenate([x[2500:], unseen])
    assert parity_gap(model, path, rows, TASK) <= PARITY_TOLERANCE
    assert pd.Series(prep.to_dict()["encoded_names"]).is_unique
    assert Preprocessing.from_dict(prep.to_dict()) == prep
