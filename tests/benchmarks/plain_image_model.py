"""The baseline of `make bench-serve-images`: the same ONNX model behind a Seldon model class
written plainly (Pillow decode, resize, normalise; no checks, no logs)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np


class PlainImageModel:
    """Decodes the file Seldon hands over (binData), fits it to the model's size and scores it."""

    def __init__(self, model_dir: str) -> None:
        import onnxruntime as ort

        folder = Path(model_dir)
        inputs = json.loads((folder / "preprocessing.json").read_text())
        self.height, self.width = inputs["size"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # as the kubeloop server
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

    def predict(self, X: Any, features_names: list[str] | None = None) -> Any:
        from PIL import Image

        image = (
            Image.open(io.BytesIO(X))
            .convert("L")
            .resize((self.width, self.height), Image.Resampling.BILINEAR)
        )
        pixels = np.asarray(image, dtype=np.float32)[None, None] / 255.0
        return self.session.run(["probability"], {"image": pixels})[0]


class PlainImageModelSkippingMetrics(PlainImageModel):
    """The baseline with kubeloop's one change to Seldon itself (no metrics round trip when there
    is nothing to record, components/deploy/seldon_metrics.py): what kubeloop's own checks and
    logs cost, with the server equal on both sides."""

    def load(self) -> None:
        from components.deploy.seldon_metrics import skip_empty_updates

        skip_empty_updates()
