"""JPEG batches decoded by torchvision (nvJPEG on a GPU; libjpeg here, the same code) and fitted
with torch equal what the CPU path prepares for training and serving."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from components.common.modalities.image_gpu import all_jpeg, decode_batch
from components.common.modalities.image_prep import ImageInputs, load


def _files(folder: Path) -> list[Path]:
    """Grey and RGB JPEGs of three shapes, and a PNG under a .jpg name (the CPU's to decode)."""
    rng = np.random.default_rng(0)
    paths = []
    for index, (height, width, colour) in enumerate([(90, 60, False), (50, 80, True), (64, 64, False)]):
        shape = (height, width, 3) if colour else (height, width)
        pixels = ndimage.gaussian_filter(rng.random(shape) * 255, 1.5).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
        path = folder / f"{index}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    odd = folder / "3.jpg"
    Image.fromarray(rng.integers(0, 255, (40, 30), dtype=np.uint8)).save(odd, format="PNG")
    return [*paths, odd]


@pytest.mark.parametrize("how", ["letterbox", "stretch", "center_crop"])
@pytest.mark.parametrize("channels", [1, 3])
def test_a_decoded_batch_equals_the_cpu_preparation(tmp_path: Path, how: str, channels: int) -> None:
    paths = _files(tmp_path)
    inputs = ImageInputs(
        size=(48, 40), channels=channels, fit=how, mean=[0.0] * channels, std=[1.0] * channels
    )
    blobs = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in paths]
    batch = decode_batch(blobs, inputs, torch.device("cpu"))
    expected = np.stack([load(str(p), inputs) for p in paths])
    assert batch.shape == (4, channels, 48, 40) and batch.dtype == torch.float32
    np.testing.assert_allclose(batch.numpy(), expected, atol=1e-5)


def test_only_an_all_jpeg_split_takes_the_gpu_path() -> None:
    assert all_jpeg(["a/1.jpg", "b/2.JPEG"])
    assert not all_jpeg(["a/1.jpg", "b/2.png"]) and not all_jpeg([])
