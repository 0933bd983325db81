"""The per-image property row: header fields, intensity statistics, sharpness and two hashes.

Each image is decoded once (`image_io.grey_image`) and every statistic is taken from that one
grey array, in strips of about a million pixels so that a large image needs little memory
beyond its own pixels. Sums are taken in float64 on the stored integers; results are scaled to
[0, 1] by the full-scale value (255, 65535, or `2**BitsStored - 1` for DICOM). Products go
through `np.einsum`, not BLAS: OpenBLAS's threads on these small arrays made one image 20 times
slower on a 2-core machine. Pillow's JPEG `draft()` (DCT-domain downscaling) is not used: it
changes the decoded values and so every statistic. This module imports numpy and Pillow only.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np
from PIL import Image

from components.common.modalities.image_io import (
    DEFAULT_MAX_PIXELS,
    EXTENSIONS,
    ImageError,
    ImageHeader,
    extension_matches,
    grey_image,
    sniff_format,
)

PROPERTY_COLUMNS = (
    "name",
    "format",
    "extension",
    "extension_matches",
    "mode",
    "channels",
    "bit_depth",
    "width",
    "height",
    "file_bytes",
    "mean",
    "std",
    "rms_contrast",
    "sharpness",
    "sha256",
    "phash",
    "manufacturer",
    "rows",
    "columns",
    "pixel_spacing",
    "pixel_spacing_column",
    "error",
    "error_check",
)
"""The keys of every property row, in order. `pixel_spacing` is DICOM's first PixelSpacing
value (between rows, mm), `pixel_spacing_column` its second; DICOM-only fields are None for
PNG and JPEG. `error`/`error_check` are None for a usable image."""

NEAR_DUPLICATE_BITS = 8
"""Perceptual hashes at most this many bits apart (of 64) mark a near duplicate: the same
picture resized, re-encoded or with its brightness nudged stays within it; different pictures
are typically 20 or more apart."""

_STRIP_PIXELS = 1 << 20
_HASH_SIDE, _HASH_BITS = 32, 8
_DCT = np.cos(np.pi * np.outer(np.arange(_HASH_BITS), 2 * np.arange(_HASH_SIDE) + 1) / (2 * _HASH_SIDE))
"""The first 8 DCT-II basis rows on 32 samples (unnormalised: scale does not move a median test)."""


def image_properties(
    data: bytes, name: str, extension: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> dict[str, Any]:
    """The property row of one file; a bad file is a row with its error, never an exception.

    Args:
        data: The whole file.
        name: The file's name (manifest name or path), kept in the row and used in messages.
        extension: The extension to compare with the format (`.png`, `png`); by default the
            suffix of `name`.
        max_pixels: Most pixels a header may promise; larger images are refused undecoded.

    Returns:
        A dict with the keys `PROPERTY_COLUMNS`. `mean` and `std` are of the grey intensity in
        [0, 1]; `rms_contrast` is `std / mean` (the absolute RMS contrast of intensities in
        [0, 1] is `std` itself; 0 for a black image); `sharpness` is the variance of the
        4-neighbour Laplacian of the [0, 1] grey image over its interior pixels (0 below 3 x 3);
        `sha256` is of the file's bytes; `phash` a 64-bit DCT perceptual hash in hex (compare
        with `hamming`). `error_check` is `empty`, `truncated`, `unreadable`, `unsupported`,
        `too_many_pixels` or `format_mismatch` (the image is read but its extension names
        another format; its properties are filled in).
    """
    row: dict[str, Any] = dict.fromkeys(PROPERTY_COLUMNS)
    suffix = os.path.splitext(name)[1] if extension is None else extension
    suffix = suffix.lower() if not suffix or suffix.startswith(".") else "." + suffix.lower()
    fmt = sniff_format(data[:132])
    row.update(
        name=name,
        format=fmt,
        extension=suffix,
        extension_matches=extension_matches(fmt, suffix),
        file_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    try:
        grey = grey_image(data, name, max_pixels)
    except ImageError as error:
        if error.header is not None:
            _fill_header(row, error.header)
        row.update(error=str(error), error_check=error.check)
        return row
    fmt = grey.header.format
    _fill_header(row, grey.header)
    row.update(intensity_properties(grey.pixels, grey.full), phash=perceptual_hash(grey.image))
    if not row["extension_matches"]:
        known = ", ".join(sorted(e for e in EXTENSIONS[fmt] if e))
        row.update(
            error=f"{name}: the file is {fmt.upper()} but its extension is {suffix or 'empty'!r}; "
            f"rename it ({known}) or re-export it in the format its name says",
            error_check="format_mismatch",
        )
    return row


def _fill_header(row: dict[str, Any], header: ImageHeader) -> None:
    """Copy the header's fields (and DICOM's metadata columns) into a property row."""
    row.update(
        format=header.format,
        mode=header.mode,
        channels=header.channels,
        bit_depth=header.bit_depth,
        width=header.width,
        height=header.height,
    )
    meta = header.metadata
    if header.format == "dicom":
        spacing = meta.get("pixel_spacing") or (None, None)
        row.update(
            manufacturer=meta.get("manufacturer"),
            rows=meta.get("rows"),
            columns=meta.get("columns"),
            pixel_spacing=spacing[0],
            pixel_spacing_column=spacing[1],
        )


def intensity_properties(grey: np.ndarray, full: int) -> dict[str, float]:
    """mean, std, rms_contrast (std / mean; 0 for a black image) and sharpness of a grey image,
    as the property row and the request log of a served image keep them."""
    mean, std, sharpness = intensity_statistics(grey, full)
    return {"mean": mean, "std": std, "rms_contrast": std / mean if mean > 0 else 0.0, "sharpness": sharpness}


def intensity_statistics(grey: np.ndarray, full: int) -> tuple[float, float, float]:
    """Mean, standard deviation and Laplacian variance of a grey image scaled to [0, 1].

    Args:
        grey: (H, W) integer intensities (uint8 or uint16).
        full: The full-scale value that maps to 1.

    Returns:
        (mean, std, sharpness): population statistics over all pixels; sharpness is the
        variance of `up + down + left + right - 4 * centre` over the interior pixels (no
        padding), 0.0 for images narrower or shorter than 3 pixels.
    """
    height, width = grey.shape
    count = grey.size
    if count == 0:
        return 0.0, 0.0, 0.0
    if count <= _STRIP_PIXELS:
        return _whole_statistics(grey, full)
    step = max(1, _STRIP_PIXELS // width)
    total = int(grey.sum(dtype=np.uint64))
    squares, lap_sum, lap_squares = 0.0, 0.0, 0.0
    for top in range(0, height, step):
        bottom = min(top + step, height)
        first = max(top - 1, 0)  # one row of halo above and below for the Laplacian
        block = grey[first : min(bottom + 1, height)].astype(np.float64)
        own = block[top - first : bottom - first].reshape(-1)
        squares += float(np.einsum("i,i->", own, own))
        start, stop = max(top, 1) - first, min(bottom, height - 1) - first  # interior centre rows
        if width >= 3 and stop > start:
            lap = block[start - 1 : stop - 1, 1:-1] + block[start + 1 : stop + 1, 1:-1]
            lap += block[start:stop, :-2]
            lap += block[start:stop, 2:]
            lap -= 4.0 * block[start:stop, 1:-1]
            flat = lap.reshape(-1)
            lap_sum += float(flat.sum())
            lap_squares += float(np.einsum("i,i->", flat, flat))
    mean = total / count
    variance = max(squares / count - mean * mean, 0.0)
    sharpness = 0.0
    if height >= 3 and width >= 3:
        interior = (height - 2) * (width - 2)
        lap_mean = lap_sum / interior
        sharpness = max(lap_squares / interior - lap_mean * lap_mean, 0.0) / full**2
    return mean / full, float(np.sqrt(variance)) / full, sharpness


def _whole_statistics(grey: np.ndarray, full: int) -> tuple[float, float, float]:
    """`intensity_statistics` of an image of at most a strip, in one pass: the Laplacian in
    integers (exact), the sums in float64 (exact for integer values below 2**53, so equal to
    the strip loop's). A served image is measured in a third of the strip loop's time."""
    height, width = grey.shape
    values = grey.ravel().astype(np.float64)
    mean = float(values.sum()) / grey.size
    # einsum, not `@`: a BLAS dot starts OpenBLAS's threads, which fight the server's workers.
    variance = max(float(np.einsum("i,i->", values, values)) / grey.size - mean * mean, 0.0)
    sharpness = 0.0
    if height >= 3 and width >= 3:
        # Exact integers: 8-bit Laplacians lie in [-1020, 1020] (int16), 16-bit ones need int32.
        g: np.ndarray[Any, np.dtype[np.signedinteger[Any]]] = grey.astype(
            np.int16 if grey.dtype == np.uint8 else np.int32
        )
        lap = g[:-2, 1:-1] + g[2:, 1:-1]
        lap += g[1:-1, :-2]
        lap += g[1:-1, 2:]
        lap -= 4 * g[1:-1, 1:-1]
        flat = lap.ravel().astype(np.float64)
        interior = (height - 2) * (width - 2)
        lap_mean = float(flat.sum()) / interior
        sharpness = max(float(np.einsum("i,i->", flat, flat)) / interior - lap_mean * lap_mean, 0.0) / full**2
    return mean / full, float(np.sqrt(variance)) / full, sharpness


def perceptual_hash(grey: np.ndarray | Image.Image) -> str:
    """The 64-bit DCT perceptual hash (pHash) of a grey image, as 16 hex digits.

    The image is reduced with Pillow's BOX filter to 32 x 32, its 2-D DCT-II taken, and each
    of the 8 x 8 lowest-frequency coefficients (DC included) becomes a bit: 1 above their
    median. Row-major, first coefficient in the most significant bit. Brightness scale and bit
    depth do not change it.

    Args:
        grey: (H, W) uint8 or uint16 intensities, or the same as a Pillow `L`/`I;16` image.
    """
    image = Image.fromarray(grey) if isinstance(grey, np.ndarray) else grey
    small = np.asarray(image.resize((_HASH_SIDE, _HASH_SIDE), Image.Resampling.BOX), dtype=np.float64)
    low = np.einsum("ik,lk->il", np.einsum("ij,jk->ik", _DCT, small), _DCT).reshape(-1)
    ordered = np.sort(low)
    median = (ordered[31] + ordered[32]) / 2  # of the 64 coefficients
    return np.packbits(low > median).tobytes().hex()


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes (0 = same picture, as far as the hash sees).

    Raises:
        ValueError: Either is not a hex string.
    """
    return (int(a, 16) ^ int(b, 16)).bit_count()
