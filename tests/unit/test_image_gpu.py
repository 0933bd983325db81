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


@pytest.mark.parametrize("workers", [0, 1])
def test_batches_decoded_in_the_training_process_equal_the_workers_batches(
    tmp_path: Path, workers: int
) -> None:
    """The path a GPU takes (workers hand over bytes; decode, fit and seeded augmentation in
    the training process), run here on the CPU: the same batches, augmented ones included."""
    from components.common.image_config import ImageAugmentation
    from components.common.modalities.image_batches import ImageBatches

    paths = [str(p) for p in _files(tmp_path)[:3]] * 4
    targets = np.arange(len(paths), dtype=np.float32)
    inputs = ImageInputs(size=(32, 32), channels=1, fit="letterbox", mean=[0.0], std=[1.0])
    augment = ImageAugmentation(horizontal_flip=True, rotation_degrees=10, gamma=0.2, noise_std=0.02)

    def batches(on_device: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        loader = ImageBatches(inputs, (paths, paths[:5]), (targets, targets[:5]), augment, workers)
        loader.to(torch.device("cpu"), seed=3)
        loader.decode_on_device = on_device
        augmented = [images for images, _ in loader.epoch(2, batch_size=4)]
        plain = [images for images, _ in loader.whole("validation")]
        return augmented, plain

    (gpu_augmented, gpu_plain), (cpu_augmented, cpu_plain) = batches(True), batches(False)
    assert len(gpu_augmented) == 3 and [b.shape for b in gpu_plain] == [(5, 1, 32, 32)]
    for ours, theirs in zip([*gpu_augmented, *gpu_plain], [*cpu_augmented, *cpu_plain], strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
