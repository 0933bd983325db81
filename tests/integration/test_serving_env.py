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
    export_onnx(model, x.shape[1], onnx_path)
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
