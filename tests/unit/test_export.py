"""ONNX export: parity with torch holds for a good export and breaks for a corrupted one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from components.common.config import TrainingConfig
from components.common.tasks import BinaryTask
from components.train.export import PARITY_TOLERANCE, check_parity, export_onnx, parity_gap
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
    # The graph's nn.Embedding makes a value the exporter calls `embedding`: renamed, not doubled.
    outputs = export_onnx(model, torch.zeros(2, x.shape[1]), path)
    assert outputs.names == ("logit", "embedding") and outputs.embedding_dim == 16
    rows = np.concatenate([x[2500:], unseen])
    assert parity_gap(model, path, rows, TASK) <= PARITY_TOLERANCE
    assert pd.Series(prep.to_dict()["encoded_names"]).is_unique
    assert Preprocessing.from_dict(prep.to_dict()) == prep


@pytest.mark.parametrize("own_model", [False, True])
def test_serving_answers_from_the_scores_whether_or_not_the_graph_gives_an_embedding(
    tmp_path: Path, own_model: bool
) -> None:
    """The built-in MLP exports `logit` and `embedding`; a user's model without
    forward_with_embedding exports `logit` alone. The Seldon class serves both alike, with the
    temperature folded in as a third (or second) output."""
    import json

    from torch import nn

    from components.common.calibration import sigmoid
    from components.common.preprocessing import Preprocessing
    from components.deploy.seldon_model import KubeloopModel
    from components.train.model import tabular_mlp
    from examples.screening.generate import generate

    frame = generate(rows=300, prevalence=0.1, scanners={"A": 0.5, "B": 0.5}, seed=4)
    features = [c for c in frame.columns if c not in ("exam_id", "exam_time", "site_id", "label")]
    prep = Preprocessing.fit(frame, features, ["scanner"])
    x = prep.encode(frame)
    torch.manual_seed(0)
    model = (
        nn.Sequential(nn.Linear(x.shape[1], 6), nn.Tanh(), nn.Linear(6, 1))
        if own_model
        else tabular_mlp(tabular_spec(prep), [8], 0.0)
    ).eval()
    plain = tmp_path / "plain.onnx"
    outputs = export_onnx(model, torch.zeros(2, x.shape[1]), plain)
    assert outputs.names == (("logit",) if own_model else ("logit", "embedding"))
    assert outputs.embedding_dim == (None if own_model else 8)
    parity = check_parity(model, plain, x, TASK)
    assert parity.gap <= PARITY_TOLERANCE and (parity.embedding is None) == own_model

    record = {
        "method": "temperature",
        "params": {"temperature": 2.0},
        "operating_point": {"threshold": 0.5, "target": None},
    }
    folder = tmp_path / "3"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(TASK.serving_graph(plain.read_bytes(), record))
    (folder / "calibration.json").write_text(json.dumps(record))
    (folder / "preprocessing.json").write_text(json.dumps(prep.to_dict()))
    schema = {"features": features, "categorical": ["scanner"], "label": "label", "positive_value": 1}
    (folder / "schema.json").write_text(json.dumps(schema))
    (folder / "lineage.json").write_text(json.dumps({"config": {"name": "screening"}}))
    served = KubeloopModel(model_dir=str(folder), metrics_dir=str(tmp_path / "metrics"))
    assert served.output_names == ["logit", "probability"]  # never the embedding
    rows = json.loads(frame[features].head(40).to_json(orient="records"))
    probability, decision = served.score(served.codec.decode(rows, None, 100))
    with torch.no_grad():
        expected = sigmoid(model(torch.from_numpy(x[:40])).numpy().reshape(-1).astype(np.float64) / 2.0)
    np.testing.assert_allclose(probability, expected, atol=1e-5)
    assert decision == [int(p >= 0.5) for p in probability]


def test_scores_are_read_by_name_and_the_outputs_record_round_trips() -> None:
    from components.common.onnx_outputs import GraphOutputs, score_outputs

    assert score_outputs(["logit", "embedding", "probability"]) == ["logit", "probability"]
    with pytest.raises(ValueError, match="no 'logit'"):
        score_outputs(["output_0"])
    for record in (GraphOutputs(("logit", "embedding"), 64), GraphOutputs(("logit",), None)):
        assert GraphOutputs.from_dict(record.to_dict()) == record
    assert GraphOutputs(("logit",), None).embedding is None
