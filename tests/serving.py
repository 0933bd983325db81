"""Helpers for serving tests: a registered version, a real microservice on 127.0.0.1, requests."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.common.config import TrainingConfig
from components.common.tasks import BinaryTask
from components.deploy.local_serving import PredictorSpec, launch, stop_process, wait_ready
from components.deploy.seldondeployment import MODEL_CLASS
from tests.conftest import REPO

SERVING = REPO / ".venv-serving" / "bin"
FEATURES_DROPPED = ("exam_id", "exam_time", "site_id", "label")


def registered_version(folder: Path) -> dict[str, Any]:
    """A version folder as the registry holds it: a small trained model with Platt calibration."""
    import torch

    from components.common import calibration
    from components.common.preprocessing import Preprocessing
    from components.common.tasks.binary_calibration import fit
    from components.common.tasks.operating_point import operating_point
    from components.train.step import export_onnx
    from examples.screening.generate import generate
    from tests.specs import fit as train
    from tests.specs import tabular_spec

    frame = generate(rows=3000, prevalence=0.1, scanners={"A": 0.5, "B": 0.5}, seed=11)
    features = [c for c in frame.columns if c not in FEATURES_DROPPED]
    prep = Preprocessing.fit(frame.iloc[:2000], features, ["scanner"])
    x, y = prep.encode(frame), frame["label"].to_numpy(dtype=np.float32)
    model, _ = train(
        TrainingConfig(epochs=2, hidden_sizes=[16]),
        x[:1500],
        y[:1500],
        x[1500:2000],
        y[1500:2000],
        tabular_spec(prep),
        task=BinaryTask("label", 1),
        log=lambda _: None,
    )
    folder.mkdir(parents=True)
    export_onnx(model, torch.zeros(2, x.shape[1]), folder / "model.onnx")
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy().reshape(-1).astype(np.float64)
    record = fit("platt", logits[2000:2500], y[2000:2500].astype(int))
    p = calibration.apply(record, logits)
    labels = y.astype(int)
    record["operating_point"] = operating_point(
        ("validation", p[2000:2500], labels[2000:2500]), ("test", p[2500:], labels[2500:]), 0.9, None, 0.5
    )
    (folder / "calibration.json").write_text(json.dumps(record))
    # What calibration stores: the rollout analysis compares served scores with the validation ones.
    threshold = record["operating_point"]["threshold"]
    splits = np.where(np.arange(len(p)) < 2500, "validation", "test")[2000:]
    pd.DataFrame(
        {"split": splits, "logit": logits[2000:], "probability": p[2000:], "label": labels[2000:]}
    ).assign(decision=lambda f: (f["probability"] >= threshold).astype(int)).to_parquet(
        folder / "predictions.parquet", index=False
    )
    (folder / "preprocessing.json").write_text(json.dumps(prep.to_dict()))
    schema = {"features": features, "categorical": ["scanner"], "label": "label", "positive_value": 1}
    (folder / "schema.json").write_text(json.dumps(schema))
    (folder / "lineage.json").write_text(json.dumps({"config": {"name": "screening"}}))
    return {
        "frame": frame[features].iloc[2500:].reset_index(drop=True),
        "probability": p[2500:],
        "record": record,
    }


@contextlib.contextmanager
def microservice(model_dir: Path, folder: Path, **parameters: Any) -> Iterator[dict[str, Any]]:
    """seldon-core-microservice serving `model_dir` on 127.0.0.1, stopped (whole group) on exit."""
    if not (SERVING / "seldon-core-microservice").exists():
        if os.environ.get("CI"):
            pytest.fail("`make test` should have created .venv-serving")
        pytest.skip(".venv-serving missing; run `make setup`")
    spec = PredictorSpec.of("default", MODEL_CLASS, {"model_dir": str(model_dir), **parameters})
    upstream = launch(spec, SERVING, folder)
    try:
        try:
            wait_ready(upstream, timeout=90)
        except RuntimeError as exc:
            pytest.fail(f"microservice did not start: {exc}")
        yield {
            "base": upstream.base,
            "metrics": upstream.metrics,
            "model_metrics": upstream.model_metrics,
            "process": upstream.process,
            "log": upstream.log,
        }
    finally:
        stop_process(upstream.process)


def logged_rows(store: Path) -> list[dict[str, Any]]:
    """Every record of every log file under the store's logs/ folder."""
    return [
        json.loads(line)
        for path in sorted((store / "logs").rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def post(base: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{base}/api/v1.0/predictions", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _add_to_logit(onnx_path: Path, nodes: list[Any], initializers: list[Any], term: str) -> None:
    """Rewrite a model so that its `logit` output becomes logit + `term` (a [batch, 1] tensor)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["logit_raw" if out == "logit" else out for out in node.output]
    graph.node.extend([*nodes, helper.make_node("Add", ["logit_raw", term], ["logit"])])
    graph.initializer.extend(initializers)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def make_variant(source: Path, folder: Path, kind: str) -> Path:
    """A copy of a version folder that misbehaves as a real bad model would.

    healthy: the same files. erroring: NaN scores (so 500s) for rows with age below 49 (about
    a fifth). slow: every row also goes through 4096x4096
    matrix products that change nothing. shifted: Platt intercept +1.5 (scores move up).
    """
    import shutil

    from onnx import helper, numpy_helper

    shutil.copytree(source, folder)
    onnx_path = folder / "model.onnx"
    if kind == "erroring":
        nodes = [
            helper.make_node("Gather", ["features", "column"], ["first"], axis=1),  # age
            helper.make_node("Add", ["first", "offset"], ["shifted_first"]),
            helper.make_node("Sqrt", ["shifted_first"], ["root"]),  # NaN below the offset
            helper.make_node("Mul", ["root", "zero"], ["nan_or_zero"]),
        ]
        constants = [
            numpy_helper.from_array(np.array([0], dtype=np.int64), "column"),
            numpy_helper.from_array(np.array(-49.0, dtype=np.float32), "offset"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ]
        _add_to_logit(onnx_path, nodes, constants, "nan_or_zero")
    elif kind == "slow":
        rng = np.random.default_rng(0)
        n_inputs = _n_inputs(onnx_path)
        nodes = [helper.make_node("MatMul", ["features", "w_in"], ["h0"])]
        for i in range(4):
            nodes.append(helper.make_node("MatMul", [f"h{i}", "w_big"], [f"h{i + 1}"]))
        nodes += [
            helper.make_node("ReduceSum", ["h4", "axes"], ["total"], keepdims=1),
            helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        ]
        constants = [
            numpy_helper.from_array(rng.normal(size=(n_inputs, 4096)).astype(np.float32), "w_in"),
            numpy_helper.from_array((rng.normal(size=(4096, 4096)) / 64).astype(np.float32), "w_big"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ]
        _add_to_logit(onnx_path, nodes, constants, "nothing")
    elif kind == "shifted":
        record = json.loads((folder / "calibration.json").read_text())
        record["params"]["b"] = float(record["params"]["b"]) + 1.5
        (folder / "calibration.json").write_text(json.dumps(record))
    elif kind != "healthy":
        raise ValueError(f"unknown variant {kind!r}")
    return folder


def _n_inputs(onnx_path: Path) -> int:
    import onnx

    dims = onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value)


IMAGE_SIZE = (32, 32)
IMAGE_BOUNDS = {"channels": [1], "bit_depths": [8, 12, 16], "min_width": 16, "min_height": 16}


def registered_image_version(
    folder: Path, size: tuple[int, int] = IMAGE_SIZE, widths: tuple[int, ...] = (8, 16)
) -> dict[str, Any]:
    """An image version folder as the registry holds it: the built-in small CNN (seeded, not
    trained: serving does not care how good it is), grey 32x32 letterboxed inputs, temperature
    calibration folded into the graph, and the screening images example's bounds."""
    import torch

    from components.common.modalities import modality_for
    from components.common.modalities.image_prep import ImageInputs
    from components.common.modalities.images import served_bounds
    from components.train.cnn import small_cnn
    from components.train.export import export_onnx

    task = BinaryTask("label", 1)
    settings = {"image": {"size": list(size), "channels": 1, "bounds": IMAGE_BOUNDS}}
    modality = modality_for("images", settings)
    bounds = served_bounds(modality.settings.bounds)  # type: ignore[attr-defined]
    inputs = ImageInputs(size, 1, "letterbox", [0.3], [0.2], bounds=bounds)
    torch.manual_seed(3)
    model = small_cnn(modality.model_spec(inputs, task), widths=list(widths)).eval()
    folder.mkdir(parents=True)
    plain = folder / "plain.onnx"
    outputs = export_onnx(model, torch.zeros(2, 1, *size), plain, input_name="image")
    record = {
        "method": "temperature",
        "params": {"temperature": 1.5},
        "operating_point": {"threshold": 0.5, "target": None},
    }
    (folder / "model.onnx").write_bytes(task.serving_graph(plain.read_bytes(), record))
    plain.unlink()
    (folder / "calibration.json").write_text(json.dumps(record))
    (folder / "preprocessing.json").write_text(json.dumps(inputs.to_dict()))
    schema = {
        "features": ["image"],
        "label": "label",
        "positive_value": 1,
        "modality": "images",
        "modality_settings": {**settings, "image_column": "image"},
    }
    (folder / "schema.json").write_text(json.dumps(schema))
    (folder / "lineage.json").write_text(json.dumps({"config": {"name": "screening-images"}}))
    return {"inputs": inputs, "embedding_dim": outputs.embedding_dim, "model": model}
