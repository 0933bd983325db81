"""A team's own network, kept outside the repository: trained by `kubeloop run` under torchrun
with 2 processes, exported with parity, registered with its code in lineage, and served by the
Seldon class exactly as evaluation scored it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.store import LocalStore
from tests.conftest import REPO
from tests.e2e.test_training_pipeline import kubeloop
from tests.serving import microservice, post

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("team")
    shutil.copy(REPO / "examples" / "own_model" / "model.py", folder / "model.py")
    shutil.copy(REPO / "examples" / "own_model" / "config.yaml", folder / "config.yaml")
    store = folder / "store"
    result = kubeloop(
        [
            "run",
            "--config",
            str(folder / "config.yaml"),
            "--store",
            str(store),
            "training.nproc=2",
            "training.epochs=30",
        ],
        folder,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder


def test_the_version_was_trained_by_two_processes_and_names_its_code(team: Path) -> None:
    store = LocalStore(team / "store")
    lineage = store.read_json("models/own-model/1/lineage.json")
    model = lineage["model"]
    assert model["factory"] == "model:residual_mlp" and model["params"]["width"] == 32
    assert model["source_sha256"] == hashlib.sha256((team / "model.py").read_bytes()).hexdigest()
    assert Path(model["source_file"]) == team / "model.py"
    run = lineage["run_id"]
    train = json.loads((team / "store" / "runs" / run / "train" / "status.json").read_text())
    metrics = train["metrics"]
    assert int(metrics["world_size"]) == 2 and float(metrics["onnx_parity_ratio"]) <= 1.0
    assert store.read_json("models/own-model/1/metrics.json")["roc_auc"] >= 0.95


def test_the_seldon_class_serves_what_evaluation_scored(team: Path, tmp_path: Path) -> None:
    version = team / "store" / "models" / "own-model" / "1"
    stored = pd.read_parquet(version / "predictions.parquet")
    test = stored[stored["split"] == "test"]
    frame = pd.read_csv(team / "data" / "breast_cancer.csv")
    features = json.loads((version / "schema.json").read_text())["features"]
    splits = team / "store" / "runs" / json.loads((version / "lineage.json").read_text())["run_id"]
    rows = pd.read_parquet(splits / "validate_data" / "splits" / "test.parquet")[features]
    assert len(rows) == len(test) and len(frame) == 569
    with microservice(version, tmp_path) as server:
        status, reply = post(server["base"], {"data": {"names": features, "ndarray": rows.values.tolist()}})
    assert status == 200, reply
    served = np.array(reply["data"]["ndarray"])
    np.testing.assert_allclose(served[:, 0], test["probability"].to_numpy(), rtol=1e-4, atol=1e-5)
    assert (served[:, 1] == test["decision"].to_numpy()).all()


def test_a_second_version_fine_tuned_from_the_first_names_it_in_lineage(team: Path) -> None:
    store = team / "store"
    result = kubeloop(
        [
            "run",
            "--config",
            str(team / "config.yaml"),
            "--store",
            str(store),
            "training.init_from.model=own-model",
            "training.init_from.version=1",
            "training.freeze=[project]",
            "training.unfreeze_after_epochs=2",
            "training.epochs=6",
        ],
        team,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lineage = LocalStore(store).read_json("models/own-model/2/lineage.json")
    init = lineage["model"]["init_from"]
    assert (
        init["model"] == "own-model"
        and init["version"] == "1"
        and init["key"] == "models/own-model/1/model.pt"
    )
    assert init["sha256"] == hashlib.sha256((store / "models/own-model/1/model.pt").read_bytes()).hexdigest()
    log = (store / "runs" / lineage["run_id"] / "train").parent
    text = "\n".join(p.read_text() for p in log.rglob("*.log")) + result.stdout
    assert "warm start from own-model v1:" in text and "unfrozen from epoch 3: project" in text
    assert "started from" in (store / "models/own-model/2/card.html").read_text()
