"""User model code: a factory from a folder outside the repository builds, checks and records;
each kind of broken factory fails before training, naming the factory and the fault."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from components.common.modalities import TabularModality
from components.common.model_spec import ModelSpec
from components.common.preprocessing import Preprocessing
from components.common.training_config import ModelFactory, TrainingConfig
from components.train.factory import ModelFactoryError, build_model, check_model, factory_lineage
from examples.screening.generate import generate
from tests.conftest import REPO
from tests.specs import tabular_spec

BROKEN = """
import torch
from torch import nn

not_a_function = 3

def returns_a_list(spec):
    return [nn.Linear(spec.n_inputs, 1)]

def two_logits(spec):
    return nn.Linear(spec.n_inputs, 2)

class DataDependent(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.linear = nn.Linear(n, 1)

    def forward(self, x):
        if x.sum() > 0:  # control flow on values: torch.export cannot trace it
            return self.linear(x)
        return -self.linear(x)

def data_dependent(spec):
    return DataDependent(spec.n_inputs)

class Embeds(nn.Module):
    def __init__(self, n, flat, shifted):
        super().__init__()
        self.hidden, self.out = nn.Linear(n, 4), nn.Linear(4, 1)
        self.flat, self.shifted = flat, shifted

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))

    def forward_with_embedding(self, x):
        features = torch.relu(self.hidden(x))
        logits = self.out(features) + (1.0 if self.shifted else 0.0)
        return logits, features.sum(1) if self.flat else features

def flat_embedding(spec):
    return Embeds(spec.n_inputs, flat=True, shifted=False)

def other_logits(spec):
    return Embeds(spec.n_inputs, flat=False, shifted=True)

def good_embedding(spec):
    return Embeds(spec.n_inputs, flat=False, shifted=False)
"""


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelSpec, np.ndarray]:
    team = tmp_path_factory.mktemp("team")  # a folder outside the repository
    shutil.copy(REPO / "examples" / "own_model" / "model.py", team / "team_model.py")
    (team / "broken_models.py").write_text(BROKEN)
    frame = generate(rows=300, prevalence=0.1, scanners={"A": 0.5, "B": 0.5}, seed=1)
    features = ["age", "breast_density", "lesion_size_mm", "margin_irregularity", "intensity_mean", "scanner"]
    prep = Preprocessing.fit(frame, features, ["scanner"])
    return team, tabular_spec(prep), prep.encode(frame)


def config(team: Path, factory: str, **params: object) -> TrainingConfig:
    return TrainingConfig(model=ModelFactory(factory=factory, params=params), code_path=str(team))


def test_a_factory_beside_the_config_builds_checks_and_records_its_source(
    setting: tuple[Path, ModelSpec, np.ndarray], tmp_path: Path
) -> None:
    team, spec, x = setting
    cfg = config(team, "team_model:residual_mlp", width=16, blocks=1)
    assert check_model(cfg, spec, x, tmp_path) > 0
    model = build_model(cfg, spec)
    assert type(model).__name__ == "ResidualMLP" and model.head[1].out_features == 1
    record = factory_lineage(cfg, TabularModality())
    assert record["factory"] == "team_model:residual_mlp" and record["params"] == {"width": 16, "blocks": 1}
    assert record["source_sha256"] == hashlib.sha256((team / "team_model.py").read_bytes()).hexdigest()
    assert record["package_version"] is None  # a module, not an installed package


@pytest.mark.parametrize(
    ("factory", "fault"),
    [
        ("no_such_module:build", "cannot import 'no_such_module'"),
        ("broken_models:not_a_function", "'not_a_function' is a int, not a function"),
        ("broken_models:returns_a_list", "returned a list, not a torch.nn.Module"),
        ("broken_models:two_logits", "gave logits of shape (2, 2); the binary task needs (2, 1)"),
        ("broken_models:data_dependent", "torch could not export the model to ONNX"),
        (
            "broken_models:flat_embedding",
            "must return (logits, embedding), the embedding (batch, D); got ((2, 1), (2,))",
        ),
        ("broken_models:other_logits", "forward_with_embedding gives logits other than forward's"),
    ],
)
def test_a_broken_factory_fails_before_training_naming_itself_and_the_fault(
    setting: tuple[Path, ModelSpec, np.ndarray], tmp_path: Path, factory: str, fault: str
) -> None:
    team, spec, x = setting
    with pytest.raises(ModelFactoryError) as caught:
        check_model(config(team, factory), spec, x, tmp_path)
    message = str(caught.value)
    assert f"training.model.factory {factory!r}" in message and fault in message, message
    assert list(tmp_path.iterdir()) == []  # the export attempt left nothing behind


def test_the_export_failure_names_what_the_exporter_could_not_do(
    setting: tuple[Path, ModelSpec, np.ndarray], tmp_path: Path
) -> None:
    team, spec, x = setting
    with pytest.raises(ModelFactoryError, match="data-dependent"):
        check_model(config(team, "broken_models:data_dependent"), spec, x, tmp_path)


def test_a_factory_s_own_embedding_is_checked_and_exported(
    setting: tuple[Path, ModelSpec, np.ndarray], tmp_path: Path
) -> None:
    import torch

    from components.train.export import export_onnx

    team, spec, x = setting
    cfg = config(team, "broken_models:good_embedding")
    assert check_model(cfg, spec, x, tmp_path) > 0
    outputs = export_onnx(build_model(cfg, spec).eval(), torch.zeros(2, spec.n_inputs), tmp_path / "m.onnx")
    assert outputs.names == ("logit", "embedding") and outputs.embedding_dim == 4
    plain = config(team, "team_model:residual_mlp", width=16, blocks=1)  # no forward_with_embedding
    outputs = export_onnx(build_model(plain, spec).eval(), torch.zeros(2, spec.n_inputs), tmp_path / "p.onnx")
    assert outputs.names == ("logit",) and outputs.embedding is None
