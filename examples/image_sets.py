"""Writes an image set: PNG or DICOM files in a folder beside a manifest that lists one image per row."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from components.common.data import write_table


def images_folder(manifest: str | Path) -> Path:
    """The folder that holds a manifest's images: `<stem>_images/` beside it."""
    path = Path(manifest)
    return path.with_name(f"{path.stem}_images")


def write_dicom(path: Path, pixels: np.ndarray, tags: Mapping[str, Any]) -> None:
    """One uncompressed single-frame greyscale DICOM (MONOCHROME2, explicit VR little endian):
    a mammography-like instance with the given tags (Manufacturer, PixelSpacing, BitsStored:
    default all the bits of the array's type, ...)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path.name, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = 8 if pixels.dtype == np.uint8 else 16
    bits_stored = int(tags.get("BitsStored", ds.BitsAllocated))
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


def write_image_set(
    path: str | Path,
    frame: pd.DataFrame,
    images: Sequence[np.ndarray],
    names: Sequence[str],
    tags: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write `images` as files and `frame` as the manifest at `path` (.csv or .parquet).

    The manifest gains a first column `image`: each file's path relative to the manifest. A
    crash never leaves a manifest that points at missing or half-written files: an existing
    manifest is removed first, the images are written to a temporary folder that then replaces
    the old one, and the manifest is written last (write then rename).

    Args:
        path: The manifest's path; the images go to `images_folder(path)`.
        frame: One row per image, in the order of `images`.
        images: 2-D uint8 (8-bit grey) or uint16 (16-bit grey) arrays.
        names: File names of the images inside the folder, e.g. "000012.png"; a name ending in
            .dcm is written as DICOM.
        tags: Per image, the DICOM tags of a .dcm file (ignored for PNG).

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
        for index, (name, pixels) in enumerate(zip(names, images, strict=True)):
            if name.endswith(".dcm"):
                write_dicom(fresh / name, pixels, tags[index] if tags else {})
            else:
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
