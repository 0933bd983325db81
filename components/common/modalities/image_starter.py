"""`kubeloop init` for an image manifest: the path column, and the input size, channels and
gate bounds chosen from image headers read across every device."""

from __future__ import annotations

import pandas as pd

from components.common.commented_yaml import Entry
from components.common.modalities.base import Starter
from components.common.modalities.image_io import ImageError, read_header
from components.common.modalities.image_prep import locate, read_location

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
PROBED = 50
"""Image headers read to choose the input size, channels and the gate's bounds."""
LARGEST_SIDE = 128
"""A first model's input side at most: CPU-sized; raise `dataset.image.size` later."""


def image_column(frame: pd.DataFrame) -> str | None:
    """The first text column whose values are nearly all image file names."""
    for name in frame.columns:
        column = frame[name]
        if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
            continue
        sample = column.dropna().astype(str).head(200).str.lower()
        if len(sample) and sample.str.endswith(IMAGE_SUFFIXES).mean() >= 0.9:
            return str(name)
    return None


def probed(frame: pd.DataFrame, column: str, device: str | None) -> list[str]:
    """Up to PROBED image paths spread over the manifest, every device's among them."""
    rows = frame[frame[column].notna()]
    if device is not None:
        per_device = max(1, PROBED // max(1, rows[device].nunique()))
        rows = rows.groupby(device, dropna=False).head(per_device)
    step = max(1, len(rows) // PROBED)
    return [str(v) for v in rows[column].iloc[::step].head(PROBED)]


def image_starter(frame: pd.DataFrame, column: str, manifest: str, device: str | None) -> Starter:
    """The image settings of a manifest (a path or s3:// URI), from its headers (no pixel is
    decoded); relative image paths are found beside it, as training finds them."""
    headers, problems = [], []
    for location in probed(frame, column, device):
        try:
            headers.append(read_header(read_location(locate(location, manifest)), location))
        except (OSError, ImageError) as exc:
            problems.append(f"{location}: {exc}")
    if not headers:
        raise ValueError(
            f"none of the {PROBED} images probed in column '{column}' could be read "
            f"({problems[0] if problems else 'no paths'}); paths are relative to the manifest"
        )
    widths = sorted(h.width for h in headers)
    heights = sorted(h.height for h in headers)
    median_w, median_h = widths[len(widths) // 2], heights[len(heights) // 2]
    scale = min(1.0, LARGEST_SIDE / max(median_w, median_h))
    size = [max(16, round(median_h * scale / 8) * 8), max(16, round(median_w * scale / 8) * 8)]
    channels = 3 if any(h.channels >= 3 for h in headers) else 1
    formats = "/".join(sorted({h.format for h in headers}))
    spread = f"{min(widths)}-{max(widths)} x {min(heights)}-{max(heights)} px"
    bounds = {
        "bit_depths": sorted({h.bit_depth for h in headers}),
        "min_width": max(8, min(widths) // 2),
        "min_height": max(8, min(heights) // 2),
    }
    image = [
        Entry("size", size, f"[height, width]: the median {median_h} x {median_w}, at most {LARGEST_SIDE}"),
        Entry("channels", channels, "colour seen" if channels == 3 else "greyscale"),
        Entry("fit", "letterbox", "keeps each device's aspect ratio"),
        Entry("bounds", bounds, "what the headers had; smaller images or other depths are refused"),
    ]
    entries = [
        Entry("modality", "images", f"column '{column}' holds image files"),
        Entry("image_column", column),
        Entry("image", why=f"{len(headers)} headers read: {formats}, {spread}", children=image),
    ]
    return Starter(entries, infers_features=False, problems=problems)
