"""JPEG training batches decoded on the GPU (nvJPEG, through torchvision.io.decode_jpeg).

Where it helps: a GPU node whose CPU cores decode JPEGs more slowly than the GPU trains on them
(few cores per GPU, large photographs: dermatology, pathology tiles). The DataLoader workers
then only read each file's bytes; the training process decodes the whole batch on the GPU and
fits it to the model's size there, with the same antialiased bilinear resize as Pillow's
(`image_prep.fit_size`; measured within 3e-7 on [0, 1] pixels), so training sees what serving
prepares on a CPU. Files that are not baseline or progressive JPEG (a PNG under a .jpg name,
CMYK) are prepared on the CPU as everywhere else. PNG and DICOM sets keep the CPU path.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from components.common.modalities.image_prep import (
    GREY_WEIGHTS,
    ImageInputs,
    decode_scaled,
    fit_input,
    read_location,
)

JPEG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")


def all_jpeg(locations: Sequence[str]) -> bool:
    """Whether every location names a JPEG file (the gate has checked extensions against the
    magic bytes; a file that lies still decodes, on the CPU)."""
    return bool(locations) and all(str(v).lower().endswith(JPEG_EXTENSIONS) for v in locations)


Encoded = tuple[torch.Tensor, torch.Tensor, int, int]
"""(the file's bytes, target, epoch, row): what a worker hands over for the device to decode."""


class EncodedFiles(Dataset[Encoded]):
    """Each row's file bytes, read in a DataLoader worker; decoding waits for the device."""

    def __init__(self, locations: Sequence[str], targets: np.ndarray) -> None:
        self.locations = list(locations)
        self.targets = torch.from_numpy(np.ascontiguousarray(targets))

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, key: int | tuple[int, int]) -> Encoded:
        """Row `key`, or (epoch, row) as the training sampler gives it."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        data = read_location(self.locations[index])
        return torch.frombuffer(bytearray(data), dtype=torch.uint8), self.targets[index], epoch, index


def collate_encoded(
    rows: Sequence[Encoded],
) -> tuple[list[torch.Tensor], torch.Tensor, list[int], list[int]]:
    """A batch of encoded rows: the files stay a list (their lengths differ)."""
    return (
        [row[0] for row in rows],
        torch.stack([row[1] for row in rows]),
        [row[2] for row in rows],
        [row[3] for row in rows],
    )


def decode_batch(blobs: Sequence[torch.Tensor], inputs: ImageInputs, device: torch.device) -> torch.Tensor:
    """Encoded files (uint8 tensors of their bytes) -> (N, C, H, W) float32 in [0, 1] on
    `device`, prepared as `image_prep.prepare` prepares them."""
    from torchvision.io import ImageReadMode, decode_jpeg

    prepared: list[torch.Tensor | None] = [None] * len(blobs)
    decoded: list[torch.Tensor | None]
    try:
        decoded = list(decode_jpeg(list(blobs), mode=ImageReadMode.UNCHANGED, device=device))
    except RuntimeError:  # one file is not a JPEG nvJPEG reads: each alone, the odd one on the CPU
        decoded = [_decode_one(blob, device) for blob in blobs]
    for index, pixels in enumerate(decoded):
        if pixels is not None and pixels.shape[0] in (1, 3):
            unit = to_channels(pixels.float() / 255.0, inputs.channels)
            prepared[index] = fit(unit, inputs.size, inputs.fit)
    for index, done in enumerate(prepared):
        if done is None:
            data = blobs[index].numpy().tobytes()
            cpu = fit_input(decode_scaled(data, f"image {index}", inputs.max_pixels), inputs)
            prepared[index] = torch.from_numpy(cpu).to(device)
    return torch.stack([image for image in prepared if image is not None])


def _decode_one(blob: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(blob, mode=ImageReadMode.UNCHANGED, device=device)
    except RuntimeError:
        return None


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """(c, H, W) in [0, 1] -> (channels, H, W): RGB to ITU-R 601 luma, grey repeated for RGB."""
    if image.shape[0] == 3 and channels == 1:
        weights = torch.as_tensor(GREY_WEIGHTS, device=image.device).view(3, 1, 1)
        return (image * weights).sum(dim=0, keepdim=True)
    if image.shape[0] == 1 and channels == 3:
        return image.expand(3, -1, -1).contiguous()
    return image


def fit(image: torch.Tensor, size: tuple[int, int], how: str) -> torch.Tensor:
    """(C, H, W) -> (C, size[0], size[1]) as `image_prep.fit_size` does (letterbox, stretch,
    center_crop), with torch's antialiased bilinear resize."""
    height, width = size
    _, h, w = image.shape
    if how == "stretch":
        return _resize(image, height, width)
    scale = min(height / h, width / w) if how == "letterbox" else max(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    planes = _resize(image, new_h, new_w)
    if how == "letterbox":
        out = image.new_zeros((image.shape[0], height, width))
        top, left = (height - new_h) // 2, (width - new_w) // 2
        out[:, top : top + new_h, left : left + new_w] = planes
        return out
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return planes[:, top : top + height, left : left + width].contiguous()


def _resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if tuple(image.shape[1:]) == (height, width):
        return image
    return F.interpolate(
        image[None], size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )[0]
