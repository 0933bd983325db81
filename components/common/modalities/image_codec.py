"""Serving images: base64 files or decoded pixels in a request, prepared exactly as in training.

Accepted payloads (what Seldon hands the model class as jsonData, strData or binData):
`{"images": [base64, ...]}` for a batch, `{"image": base64}` or a bare base64 string for one,
raw file bytes, or already-decoded pixels as nested lists ((H, W), (H, W, C) or a batch of them,
integers 0-255 or floats in [0, 1]). A bad image is a 400 naming the image and the problem;
a header promising more pixels than allowed is refused before decoding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.common.modalities.base import LOG_ENCODER, BadInput, Codec, ServedBatch
from components.common.modalities.image_io import ImageError
from components.common.modalities.image_prep import ImageInputs, decode_scaled, prepare


@dataclass
class ImageBatch:
    """Prepared images (N, C, H, W) and what the request log keeps of each."""

    images: np.ndarray
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Images in the request."""
        return len(self.images)


class ImageCodec(Codec):
    """Request images -> the model's prepared input; their size and hash go to the request log."""

    def __init__(self, inputs: ImageInputs) -> None:
        """The version's input spec (size, channels, fit, the pixel limit)."""
        self.inputs = inputs

    def decode(self, payload: Any, names: Sequence[str] | None, max_rows: int) -> ServedBatch:
        """Check, decode and prepare every image of the request.

        Raises:
            BadInput: Not an image, truncated, unsupported, too many pixels or too many images.
        """
        files, pixels = _split(payload)
        count = len(files) + len(pixels)
        if count == 0:
            raise BadInput('the request holds no image; send {"images": [<base64 file>, ...]}')
        if count > max_rows:
            raise BadInput(f"{count} images in one request; the limit is {max_rows}: split the batch")
        prepared, records = [], []
        for index, data in enumerate(files):
            name = f"image {index}"
            try:
                array = decode_scaled(data, name, self.inputs.max_pixels)
            except ImageError as exc:
                raise BadInput(f"{name}: {exc}") from None
            prepared.append(prepare(array, self.inputs))
            records.append(
                {
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "file_bytes": len(data),
                    "height": int(array.shape[0]),
                    "width": int(array.shape[1]),
                }
            )
        for array in pixels:
            prepared.append(prepare(array, self.inputs))
            records.append({"height": int(array.shape[0]), "width": int(array.shape[1])})
        return ImageBatch(np.stack(prepared).astype(np.float32), records)

    def feed(self, batch: ServedBatch) -> dict[str, np.ndarray]:
        """{"image": the prepared images}."""
        return {"image": _batch(batch).images}

    def log_members(self, batch: ServedBatch) -> list[str]:
        """`"image":{sha256, file_bytes, height, width}` per image (never the pixels)."""
        return ['"image":' + LOG_ENCODER.encode(record) for record in _batch(batch).records]

    def example(self) -> ServedBatch:
        """One mid-grey image at the model's size."""
        grey = np.full((*self.inputs.size, self.inputs.channels), 0.5, dtype=np.float32)
        return ImageBatch(
            prepare(grey, self.inputs)[None], [{"height": grey.shape[0], "width": grey.shape[1]}]
        )

    def metadata(self) -> list[dict[str, Any]]:
        """jsonData images (base64 PNG, JPEG or DICOM files), fitted to the model's size."""
        height, width = self.inputs.size
        return [
            {
                "messagetype": "jsonData",
                "schema": {
                    "images": "base64 PNG, JPEG or DICOM files",
                    "size": [height, width],
                    "channels": self.inputs.channels,
                    "fit": self.inputs.fit,
                },
            }
        ]


def _batch(batch: ServedBatch) -> ImageBatch:
    if not isinstance(batch, ImageBatch):
        raise TypeError(f"an image codec reads ImageBatch, not {type(batch).__name__}")
    return batch


def _b64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"{where} is not base64: send each image file base64-encoded") from None


def _split(payload: Any) -> tuple[list[bytes], list[np.ndarray]]:
    """(encoded files, decoded pixel arrays) of a request payload."""
    if isinstance(payload, bytes | bytearray):
        return [bytes(payload)], []
    if isinstance(payload, str):
        return [_b64(payload, "strData")], []
    if isinstance(payload, dict):
        if "images" in payload:
            images = payload["images"]
            if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
                raise BadInput("jsonData.images must be a list of base64 strings (one per image file)")
            return [_b64(text, f"images[{i}]") for i, text in enumerate(images)], []
        if "image" in payload and isinstance(payload["image"], str):
            return [_b64(payload["image"], "image")], []
        raise BadInput(f'send {{"images": [<base64 file>, ...]}}; got the keys {sorted(payload)}')
    if isinstance(payload, list | np.ndarray):
        return [], _pixels(payload)
    raise BadInput(f"cannot read an image from a {type(payload).__name__}")


def _pixels(values: Any) -> list[np.ndarray]:
    """Decoded pixels: one image (H, W) / (H, W, C), or a batch of them."""
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise BadInput("pixel arrays must be numbers in nested lists of one shape") from None
    if not np.isfinite(array).all():
        raise BadInput("pixel arrays must hold finite numbers")
    if array.max(initial=0.0) > 1.0:  # 0-255 integers, as images are usually sent
        array = array / 255.0
    if array.ndim in (2, 3) and (array.ndim == 2 or array.shape[-1] in (1, 3, 4)):
        return [np.clip(array, 0.0, 1.0)]
    if array.ndim in (3, 4):
        return [np.clip(a, 0.0, 1.0) for a in array]
    raise BadInput(
        f"pixel arrays must be (H, W), (H, W, C) or a batch of them; got shape {list(array.shape)}"
    )
