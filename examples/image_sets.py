"""Writes an image set: PNG files in a folder beside a manifest that lists one image per row."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from components.common.data import write_table


def images_folder(manifest: str | Path) -> Path:
    """The folder that holds a manifest's images: `<stem>_images/` beside it."""
    path = Path(manifest)
    return path.with_name(f"{path.stem}_images")


def write_image_set(
    path: str | Path, frame: pd.DataFrame, images: Sequence[np.ndarray], names: Sequence[str]
) -> Path:
    """Write `images` as PNG files and `frame` as the manifest at `path` (.csv or .parquet).

    The manifest gains a first column `image`: each file's path relative to the manifest. A
    crash never leaves a manifest that points at missing or half-written files: an existing
    manifest is removed first, the images are written to a temporary folder that then replaces
    the old one, and the manifest is written last (write then rename).

    Args:
        path: The manifest's path; the images go to `images_folder(path)`.
        frame: One row per image, in the order of `images`.
        images: 2-D uint8 (8-bit grey) or uint16 (16-bit grey) arrays.
        names: File names of the images inside the folder, e.g. "000012.png".

    Returns:
        The manifest's path.
    """
    if not len(frame) == len(images) == len(names):
        raise ValueError(f"{len(frame)} manifest rows, {len(images)} images and {len(names)} names differ")
    target = Path(path)
    folder = images_folder(target)
    folder.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    fresh.chmod(0o755)  # mkdtemp's 0700 would hide the images from other users of the folder
    try:
        for name, pixels in zip(names, images, strict=True):
            Image.fromarray(np.ascontiguousarray(pixels)).save(fresh / name, format="PNG")
        if folder.exists():
            stale = folder.with_name(f".{folder.name}.stale")
            shutil.rmtree(stale, ignore_errors=True)
            folder.rename(stale)
            shutil.rmtree(stale)
        fresh.rename(folder)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    manifest = frame.copy()
    manifest.insert(0, "image", [f"{folder.name}/{name}" for name in names])
    return write_table(manifest, target)
