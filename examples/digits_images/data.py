"""Writes scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, 10 classes) as PNG images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from examples.image_sets import write_image_set


def images(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The digits as 8-bit grey arrays (n, size, size) and their labels 0..9.

    scikit-learn stores each scan as 8x8 counts 0..16 (ink in 4x4 blocks of the 32x32 bitmap);
    they are scaled to 0..255 and each pixel repeated `size / 8` times along both axes
    (nearest neighbour), so nothing is invented and the 8x8 original is every (size/8)-th pixel.

    Args:
        size: Side of the stored images, a multiple of 8 (8 keeps the original grid).
    """
    if size < 8 or size % 8:
        raise ValueError(f"size {size} must be a positive multiple of 8 (8, 16, 32, ...)")
    bunch = load_digits()
    grey = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    factor = size // 8
    return grey.repeat(factor, axis=1).repeat(factor, axis=2), bunch.target.astype(int)


def write(path: str | Path, size: int = 32) -> Path:
    """Write the manifest to `path` (.csv or .parquet) and the PNG files beside it.

    Columns: `image` (path relative to the manifest), `digit` (the label, 0..9) and
    `digit_id` (the row in scikit-learn's data). The writers are not recorded in the bundled
    data, so there is no group column.

    Args:
        path: The manifest's path; the images go to `<stem>_images/` beside it.
        size: Side of the stored images, a multiple of 8 (default 32: 4x4 blocks per pixel).
    """
    pixels, digits = images(size)
    frame = pd.DataFrame({"digit": digits, "digit_id": np.arange(len(digits))})
    names = [f"{i:04d}.png" for i in range(len(digits))]
    return write_image_set(path, frame, list(pixels), names)
