"""Serving images: base64 files or decoded pixels in a request, prepared exactly as in training.

Accepted payloads (what Seldon hands the model class as jsonData, strData or binData):
`{"images": [base64, ...]}` for a batch, `{"image": base64}` or a bare base64 string for one,
raw file bytes, or already-decoded pixels as nested lists ((H, W), (H, W, C) or a batch of them,
integers 0-255 or floats in [0, 1]). `"embedding": true` beside `images` asks for each image's
embedding in the answer. A bad image is a 400 naming the image and the problem; a header
promising more pixels than allowed is refused before decoding (`image_served.py`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.common.modalities.base import LOG_ENCODER, BadInput, Codec, ServedBatch, ServedFile
from components.common.modalities.image_prep import ImageInputs, prepare
from components.common.modalities.image_served import check_pixel_bounds, read_served


@dataclass
class ImageBatch:
    """Prepared images (N, C, H, W) and what the request log keeps of each."""

    images: np.ndarray
    records: list[dict[str, Any]] = field(default_factory=list)
    """Per image, its properties as the gate names them (image_mean, image_sha256, ...)."""
    embedding: bool = False
    """The request asked for the embeddings in its answer."""
    files: list[ServedFile | None] = field(default_factory=list)
    """Per image, the file it arrived as (None for pixel arrays)."""

    @property
    def n_rows(self) -> int:
        """Images in the request."""
        return len(self.images)


class ImageCodec(Codec):
    """Request images -> the model's prepared input; their properties, hash and embedding go to
    the request log."""

    logs_embedding = True

    def __init__(self, inputs: ImageInputs) -> None:
        """The version's input spec (size, channels, fit, the pixel limit)."""
        self.inputs = inputs

    def decode(self, payload: Any, names: Sequence[str] | None, max_rows: int) -> ServedBatch:
        """Check, decode and prepare every image of the request.

        Raises:
            BadInput: Not an image, truncated, unsupported, too many pixels or too many images.
        """
        files, pixels, embedding = _split(payload)
        count = len(files) + len(pixels)
        if count == 0:
            raise BadInput('the request holds no image; send {"images": [<base64 file>, ...]}')
        if count > max_rows:
            raise BadInput(f"{count} images in one request; the limit is {max_rows}: split the batch")
        prepared, records = [], []
        kept: list[ServedFile | None] = []
        for index, data in enumerate(files):
            served = read_served(data, f"image {index}", self.inputs)
            prepared.append(served.pixels)
            records.append(served.properties)
            kept.append(ServedFile(served.properties["image_sha256"], served.extension, data))
        for index, array in enumerate(pixels, len(files)):
            check_pixel_bounds(array, f"image {index}", self.inputs.bounds)
            prepared.append(prepare(array, self.inputs))
            records.append({"image_height": int(array.shape[0]), "image_width": int(array.shape[1])})
            kept.append(None)
        return ImageBatch(np.stack(prepared), records, embedding, kept)  # prepare gives float32

    def feed(self, batch: ServedBatch) -> dict[str, np.ndarray]:
        """{"image": the prepared images}."""
        return {"image": _batch(batch).images}

    def log_members(self, batch: ServedBatch) -> list[str]:
        """`"features":{image_<property>: ...}` per image, named as the gate's columns, so the
        monitor reads served images' properties as it reads a table's features (never the pixels)."""
        return ['"features":' + LOG_ENCODER.encode(record) for record in _batch(batch).records]

    def wants_embedding(self, batch: ServedBatch) -> bool:
        """`"embedding": true` beside the images."""
        return _batch(batch).embedding

    def files(self, batch: ServedBatch) -> list[ServedFile | None]:
        """Each image's file as sent (None for pixel arrays)."""
        return list(_batch(batch).files)

    def example(self) -> ServedBatch:
        """One mid-grey image at the model's size."""
        grey = np.full((*self.inputs.size, self.inputs.channels), 0.5, dtype=np.float32)
        return ImageBatch(
            prepare(grey, self.inputs)[None], [{"image_height": grey.shape[0], "image_width": grey.shape[1]}]
        )

    def example_payload(self, rows: int) -> Any:
        """`rows` mid-grey 8-bit PNG files at the model's size, base64, as jsonData images."""
        import base64
        import io

        from PIL import Image

        height, width = self.inputs.size
        mode = "L" if self.inputs.channels == 1 else "RGB"
        buffer = io.BytesIO()
        Image.new(mode, (width, height), 128 if mode == "L" else (128, 128, 128)).save(buffer, format="PNG")
        return {"images": [base64.b64encode(buffer.getvalue()).decode()] * rows}

    def metadata(self) -> list[dict[str, Any]]:
        """jsonData images (base64 PNG, JPEG or DICOM files), fitted to the model's size."""
        height, width = self.inputs.size
        return [
            {
                "messagetype": "jsonData",
                "schema": {
                    "images": "base64 PNG, JPEG or DICOM files",
                    "embedding": "true: each prediction also carries the image's embedding",
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


def _split(payload: Any) -> tuple[list[bytes], list[np.ndarray], bool]:
    """(encoded files, decoded pixel arrays, whether the embeddings are asked for) of a payload."""
    if isinstance(payload, bytes | bytearray):
        return [bytes(payload)], [], False
    if isinstance(payload, str):
        return [_b64(payload, "strData")], [], False
    if isinstance(payload, dict):
        embedding = payload.get("embedding", False)
        if not isinstance(embedding, bool):
            raise BadInput(f'"embedding" must be true or false, not {embedding!r}')
        if "images" in payload:
            images = payload["images"]
            if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
                raise BadInput("jsonData.images must be a list of base64 strings (one per image file)")
            return [_b64(text, f"images[{i}]") for i, text in enumerate(images)], [], embedding
        if "image" in payload and isinstance(payload["image"], str):
            return [_b64(payload["image"], "image")], [], embedding
        raise BadInput(f'send {{"images": [<base64 file>, ...]}}; got the keys {sorted(payload)}')
    if isinstance(payload, list | np.ndarray):
        return [], _pixels(payload), False
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
