"""The serving environment (Python 3.12, seldon-core) runs the ONNX model the trainer exported."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from components.common.config import TrainingConfig
from components.train.step import export_onnx
from tests.conftest import REPO, fit_screening

pytestmark = pytest.mark.integration
SERVING_PYTHON = REPO / ".venv-serving" / "bin" / "python"

SCRIPT = """
import json, sys
import numpy as np, onnxruntime as ort, seldon_core, google.protobuf
x = np.array(json.load(open(sys.argv[2])), dtype=np.float32)
out = ort.InferenceSession(sys.argv[1]).run(["logit"], {"features": x})[0]
print(json.dumps({"logits": out.reshape(-1).tolist(), "protobuf": google.protobuf.__version__}))
"""


@pytest.fixture(scope="module")
def serving_python() -> Path:
    if not SERVING_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail("`make test` should have created .venv-serving")
        pytest.skip(".venv-serving missing; run `make setup`")
    return SERVING_PYTHON


def test_serving_env_reproduces_training_logits(serving_python: Path, tmp_path: Path) -> None:
    model, _, x, _ = fit_screening(
        TrainingConfig(epochs=2, hidden_sizes=[16]), rows=2000, seed=3, train_rows=1500
    )
    onnx_path = tmp_path / "model.onnx"
    export_onnx(model, torch.zeros(2, x.shape[1]), onnx_path)
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(x[:64].tolist()))
    result = subprocess.run(
        [str(serving_python), "-c", SCRIPT, str(onnx_path), str(rows)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    served = json.loads(result.stdout)
    assert served["protobuf"].startswith("5.29")  # the pin that keeps serving out of the main env
    with torch.no_grad():
        expected = model(torch.from_numpy(x[:64])).numpy().reshape(-1)
    assert np.abs(np.array(served["logits"]) - expected).max() <= 1e-5
    assert not pd.isna(served["logits"]).any()


CALIBRATE = """
import json, sys
import numpy as np, onnxruntime as ort
from components.common import calibration
records, x = json.load(open(sys.argv[2])), np.array(json.load(open(sys.argv[3])), dtype=np.float32)
session = ort.InferenceSession(sys.argv[1])
logit, folded = session.run(["logit", "probability"], {"features": x})
out = {r["method"]: calibration.apply(r, logit).tolist() for r in records}
print(json.dumps({"folded": folded.reshape(-1).tolist(), **out}))
"""


def test_serving_env_applies_every_calibration_record(serving_python: Path, tmp_path: Path) -> None:
    from components.common import calibration
    from components.common.tasks.binary_calibration import fit

    model, _, x, y = fit_screening(
        TrainingConfig(epochs=2, hidden_sizes=[16]), rows=2000, seed=4, train_rows=1500
    )
    plain = tmp_path / "plain.onnx"
    export_onnx(model, torch.zeros(2, x.shape[1]), plain)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).numpy().reshape(-1).astype(np.float64)
    records = [fit(method, logits[1500:], y[1500:]) for method in ("temperature", "platt", "isotonic")]
    folded = tmp_path / "model.onnx"
    folded.write_bytes(calibration.fold_temperature(plain.read_bytes(), records[0]["params"]["temperature"]))
    (tmp_path / "records.json").write_text(json.dumps(records))
    (tmp_path / "rows.json").write_text(json.dumps(x[:64].tolist()))
    result = subprocess.run(
        [
            str(serving_python),
            "-c",
            CALIBRATE,
            str(folded),
            str(tmp_path / "records.json"),
            str(tmp_path / "rows.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    served = json.loads(result.stdout)
    for record in records:
        expected = calibration.apply(record, logits[:64])
        assert np.abs(np.array(served[record["method"]]) - expected).max() <= 1e-5, record["method"]
    assert np.abs(np.array(served["folded"]) - np.array(served["temperature"])).max() <= 1e-6
