"""Images end to end: scikit-learn's digits as PNG files train a small CNN through the whole
pipeline, and bad image files stop the gate naming each file and its check."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.artifacts import DatasetSchema
from components.common.modalities.image_prep import ImageInputs, load
from components.common.onnx_outputs import GraphOutputs
from components.common.store import LocalStore
from tests.conftest import REPO
from tests.e2e.test_training_pipeline import kubeloop

pytestmark = pytest.mark.e2e

DIGITS = REPO / "examples" / "digits_images" / "config.yaml"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("digits")
    store, manifest = root / "store", root / "data" / "digits.csv"
    result = kubeloop(
        ["run", "--config", str(DIGITS), "--store", str(store), f"dataset.path={manifest}"], root
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return store, manifest


def test_the_small_cnn_learns_the_digits_and_registers_a_version(digits: tuple[Path, Path]) -> None:
    store = LocalStore(digits[0])
    metrics = store.read_json("models/digits/1/metrics.json")
    assert metrics["accuracy"] >= 0.95
    schema = DatasetSchema.read(store, "models/digits/1")
    assert schema.modality == "images" and schema.features == ["image"] and len(schema.classes or []) == 10
    inputs = store.read_json("models/digits/1/preprocessing.json")
    assert inputs["size"] == [32, 32] and inputs["channels"] == 1 and len(inputs["mean"]) == 1


def test_the_exported_model_reads_decoded_images_as_evaluation_scored_them(digits: tuple[Path, Path]) -> None:
    import onnxruntime as ort

    store = LocalStore(digits[0])
    session = ort.InferenceSession(
        store.read_bytes("models/digits/1/model.onnx"), providers=["CPUExecutionProvider"]
    )
    (graph_input,) = session.get_inputs()
    assert graph_input.name == "image" and graph_input.shape[1:] == [1, 32, 32]
    with store.local_copy("models/digits/1/predictions.parquet") as path:
        stored = pd.read_parquet(path)
    test = stored[stored["split"] == "test"].head(20)
    (split_file,) = digits[0].glob("runs/*/validate_data/splits/test.parquet")
    rows = pd.read_parquet(split_file).head(20)  # the stored predictions follow the split's order
    assert rows["digit"].astype(str).tolist() == test["label"].astype(str).tolist()
    inputs = ImageInputs.from_dict(store.read_json("models/digits/1/preprocessing.json"))
    images = np.stack([load(location, inputs) for location in rows["image"]])  # decoded from the files
    logits, embedding = session.run(["logit", "embedding"], {"image": images})
    columns = [c for c in stored.columns if c.startswith("logit_")]
    np.testing.assert_allclose(logits, test[columns].to_numpy(), rtol=1e-4, atol=1e-4)
    # The second output, for the monitor: the small CNN's penultimate features, recorded in lineage.
    outputs = GraphOutputs.of_onnx(store.read_bytes("models/digits/1/model.onnx"))
    assert outputs == GraphOutputs(("logit", "embedding"), 128) and embedding.shape == (20, 128)
    lineage = store.read_json("models/digits/1/lineage.json")
    assert GraphOutputs.from_dict(lineage["model"]["outputs"]) == outputs


@pytest.mark.parametrize("warning_only", [False, True])
def test_bad_image_files_stop_the_gate_naming_each_file_and_check(tmp_path: Path, warning_only: bool) -> None:
    source = tmp_path / "source" / "digits.csv"
    from examples.digits_images.data import write

    write(source)
    folder = source.parent / "digits_images"
    if warning_only:  # an extension that lies is a warning when the bounds say so; nothing else is wrong
        shutil.copy(folder / "0001.png", folder / "0001.jpg")
        manifest = pd.read_csv(source)
        manifest.loc[1, "image"] = "digits_images/0001.jpg"
        manifest.to_csv(source, index=False)
        overrides = ["dataset.image.bounds.severity=warning"]
    else:
        (folder / "0001.png").write_bytes((folder / "0001.png").read_bytes()[:60])  # truncated
        (folder / "0002.png").unlink()  # missing
        (folder / "0003.png").write_bytes(b"")  # empty
        (folder / "0004.png").write_text("not an image")  # unreadable
        for number in range(11, 41):  # 30 copies of one image: 1.7% of the rows, over the 1% bound
            shutil.copy(folder / "0010.png", folder / f"{number:04d}.png")
        overrides = []
    result = kubeloop(["validate", "--config", str(DIGITS), f"dataset.path={source}", *overrides], tmp_path)
    output = result.stdout + result.stderr
    if warning_only:
        assert result.returncode == 0, output[-3000:]
        line = next(
            line for line in output.splitlines() if "allowed_values | image_extension_matches" in line
        )
        assert line.rstrip().endswith("| warning |"), line
        assert "digits_images/0001.jpg" in output and "format_mismatch" in output
        return
    assert result.returncode == 1, output[-3000:]
    for number, check in (
        ("0001", "truncated"),
        ("0002", "missing"),
        ("0003", "empty"),
        ("0004", "unreadable"),
    ):
        line = next(
            line for line in output.splitlines() if f"digits_images/{number}.png" in line and "|" in line
        )
        assert check in line, line
    assert "FAIL" in output and "image_readable" in output and "image_found" in output
    duplicate = next(line for line in output.splitlines() if "allowed_values | image_duplicate" in line)
    assert "FAIL" in duplicate and "at least 99.00%" in duplicate, duplicate


def test_the_screening_images_train_on_two_gloo_processes_and_register(tmp_path: Path) -> None:
    config = REPO / "examples" / "screening_images" / "config.yaml"
    store = tmp_path / "store"
    result = kubeloop(
        [
            "run",
            "--config",
            str(config),
            "--store",
            str(store),
            f"dataset.path={tmp_path / 'data' / 'screening_images.csv'}",
            "dataset.generator.params.rows=2400",
            "training.epochs=4",
            "evaluation.min_roc_auc=0.6",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = LocalStore(store).read_json("models/screening-images/1/metrics.json")
    assert metrics["roc_auc"] >= 0.6
    assert "world_size=2" in result.stdout  # the train step's summary: two torchrun processes
