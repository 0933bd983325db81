"""Training on a CUDA GPU: same recipe, model handed back on the CPU, ONNX parity intact.

Skipped where no GPU is visible (CI); run on a GPU machine with
`pytest tests/integration/test_train_gpu.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from components.common.config import TrainingConfig
from components.common.preprocessing import Preprocessing
from components.common.tasks import BinaryTask
from components.train.export import export_onnx, parity_gap
from components.train.recipe import pick_device
from tests.conftest import encoded_screening
from tests.specs import fit, tabular_spec

pytestmark = pytest.mark.integration
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _data() -> tuple[Preprocessing, np.ndarray, np.ndarray]:
    return encoded_screening(rows=6000, seed=8)


@needs_gpu
def test_training_on_gpu_learns_and_exports(tmp_path: Path) -> None:
    prep, x, y = _data()
    assert pick_device("auto").type == "cuda"
    model, history = fit(
        TrainingConfig(epochs=5, device="cuda"),
        x[:4500],
        y[:4500],
        x[4500:],
        y[4500:],
        tabular_spec(prep),
        task=BinaryTask("label", 1),
        log=print,
    )
    assert next(model.parameters()).device.type == "cpu"
    with torch.no_grad():
        scores = model(torch.from_numpy(x[4500:])).numpy().reshape(-1)
    assert roc_auc_score(y[4500:], scores) > 0.75
    assert history[-1]["samples_per_s"] > 0
    path = tmp_path / "model.onnx"
    export_onnx(model, torch.zeros(2, x.shape[1]), path)
    assert parity_gap(model, path, x[4500:], BinaryTask("label", 1)) <= 1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_asking_for_cuda_without_a_gpu_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="no GPU is visible; use 'auto' or 'cpu'"):
        pick_device("cuda")
    assert pick_device("auto").type == "cpu"


@needs_gpu
def test_resuming_on_the_gpu_restores_the_device_generator(tmp_path: Path) -> None:
    prep, x, y = _data()
    cfg = TrainingConfig(epochs=3, dropout=0.3, device="cuda", early_stopping_patience=10, seed=2)
    split = (x[:4500], y[:4500], x[4500:], y[4500:])
    _, straight = fit(cfg, *split, tabular_spec(prep), task=BinaryTask("label", 1), log=lambda _: None)
    checkpoint = tmp_path / "checkpoint.pt"
    fit(
        cfg.model_copy(update={"epochs": 2}),
        *split,
        tabular_spec(prep),
        task=BinaryTask("label", 1),
        log=lambda _: None,
        checkpoint=checkpoint,
    )
    lines: list[str] = []
    _, resumed = fit(
        cfg, *split, tabular_spec(prep), task=BinaryTask("label", 1), log=lines.append, checkpoint=checkpoint
    )
    assert lines[0] == "resumed from checkpoint.pt after epoch 2"
    assert resumed[-1]["val_loss"] == pytest.approx(straight[-1]["val_loss"], abs=1e-5)


@needs_gpu
def test_jpeg_batches_decoded_by_nvjpeg_match_the_cpu_preparation(tmp_path: Path) -> None:
    """nvJPEG's IDCT may round differently from libjpeg's: within 2 grey levels of what
    serving prepares on a CPU."""
    import numpy as np

    from components.common.modalities.image_gpu import decode_batch
    from components.common.modalities.image_prep import ImageInputs, load
    from tests.unit.test_image_gpu import _files

    paths = _files(tmp_path)
    inputs = ImageInputs(size=(48, 40), channels=1, fit="letterbox", mean=[0.0], std=[1.0])
    blobs = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in paths]
    batch = decode_batch(blobs, inputs, torch.device("cuda"))
    assert batch.is_cuda
    expected = np.stack([load(str(p), inputs) for p in paths])
    np.testing.assert_allclose(batch.cpu().numpy(), expected, atol=2 / 255)
