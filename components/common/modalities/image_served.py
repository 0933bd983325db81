"""One image file of a request: held to the version's bounds before its pixels are decoded,
decoded once, prepared as evaluation prepared it, and measured as the data gate measures it (the
request log's properties, which the monitor compares with the training images').
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.common.modalities.base import BadInput
from components.common.modalities.image_gate import PREFIX
from components.common.modalities.image_io import (
    ImageError,
    ImageHeader,
    decode_with_header,
    full_scale,
    grey_of,
)
from components.common.modalities.image_prep import ImageInputs, ServedBounds, fit_input, scale_stored
from components.common.modalities.image_properties import intensity_properties

EXTENSION = {"png": "png", "jpeg": "jpg", "dicom": "dcm"}
"""The extension a stored served file takes, by format."""


@dataclass(frozen=True)
class ServedImage:
    """A request's image, ready for the model, and what the request log keeps of it."""

    pixels: np.ndarray
    """The model's input (C, H, W) float32 in [0, 1]."""
    properties: dict[str, Any]
    """image_<property>: format, channels, bit depth, size, bytes, hash and intensity statistics."""
    extension: str
    """The file name extension of its format (png, jpg, dcm)."""


def read_served(data: bytes, name: str, inputs: ImageInputs) -> ServedImage:
    """Check, decode, prepare and measure one image file.

    Args:
        data: The file's bytes.
        name: How messages name it (`image 0`).
        inputs: The version's input spec and bounds.

    Raises:
        BadInput: Empty, not an image, truncated, an unsupported format, a header promising more
            pixels than allowed (refused before decoding), or outside the version's bounds.
    """
    bounds = inputs.bounds
    if len(data) > bounds.max_file_bytes:
        raise BadInput(
            f"{name}: {len(data):,} bytes, more than the {bounds.max_file_bytes:,} this model accepts; "
            "send a smaller file (the training images' limit, dataset.image.bounds.max_file_bytes)"
        )
    try:
        header, stored = decode_with_header(
            data, name, inputs.max_pixels, lambda header: check_bounds(header, name, bounds)
        )
    except ImageError as exc:
        raise BadInput(str(exc)) from None
    pixels = fit_input(scale_stored(header, stored), inputs)
    return ServedImage(pixels, measure(header, stored, data), EXTENSION[header.format])


def check_bounds(header: ImageHeader, name: str, bounds: ServedBounds) -> None:
    """Refuse a file whose header is outside what the model was trained on.

    Raises:
        BadInput: Naming the property, the file's value and the accepted ones.
    """
    problems = []
    if header.format not in bounds.formats:
        problems.append(f"format {header.format.upper()} (accepted: {', '.join(bounds.formats)})")
    if bounds.bit_depths is not None and header.bit_depth not in bounds.bit_depths:
        problems.append(f"{header.bit_depth}-bit samples (accepted: {list(bounds.bit_depths)})")
    _refuse(name, problems + _shape_problems(header.channels, header.width, header.height, bounds))


def check_pixel_bounds(pixels: np.ndarray, name: str, bounds: ServedBounds) -> None:
    """Refuse decoded pixels (H, W) or (H, W, C) whose channels or size are outside the bounds.

    Raises:
        BadInput: As `check_bounds`.
    """
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
    _refuse(name, _shape_problems(channels, int(pixels.shape[1]), int(pixels.shape[0]), bounds))


def _shape_problems(channels: int, width: int, height: int, bounds: ServedBounds) -> list[str]:
    problems = []
    if bounds.channels is not None and channels not in bounds.channels:
        problems.append(f"{channels} channel(s) (accepted: {list(bounds.channels)})")
    if not bounds.min_width <= width <= bounds.max_width:
        problems.append(f"width {width} (accepted: {bounds.min_width} to {bounds.max_width})")
    if not bounds.min_height <= height <= bounds.max_height:
        problems.append(f"height {height} (accepted: {bounds.min_height} to {bounds.max_height})")
    return problems


def _refuse(name: str, problems: list[str]) -> None:
    if problems:
        raise BadInput(
            f"{name}: {'; '.join(problems)}; this model was trained on images within "
            "dataset.image.bounds: convert the image, or retrain with bounds that include it"
        )


def measure(header: ImageHeader, stored: np.ndarray, data: bytes) -> dict[str, Any]:
    """The gate's properties of a decoded file (`image_properties`), named as its columns."""
    intensity = intensity_properties(grey_of(stored), full_scale(header, stored))
    row = {
        "format": header.format,
        "channels": header.channels,
        "bit_depth": header.bit_depth,
        "width": header.width,
        "height": header.height,
        "file_bytes": len(data),
        **intensity,
        "sha256": hashlib.sha256(data).hexdigest(),
        "manufacturer": header.metadata.get("manufacturer"),
    }
    return {PREFIX + name: value for name, value in row.items()}
