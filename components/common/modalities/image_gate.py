"""The image gate's table: each manifest row with its image's measured properties, and the
column rules (`dataset.image.bounds`) Great Expectations checks them with, as tables are checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.common.modalities.image_prep import read_location
from components.common.modalities.image_properties import NEAR_DUPLICATE_BITS, PROPERTY_COLUMNS
from components.common.modalities.image_table import property_table

if TYPE_CHECKING:
    from components.common.config import ColumnRule
    from components.common.image_config import ImageBounds, ImageSettings

PREFIX = "image_"
"""Property columns sit beside the manifest's own as image_<property>."""
MEASURED = tuple(
    c
    for c in PROPERTY_COLUMNS
    if c not in ("name", "extension", "extension_matches", "rows", "columns", "pixel_spacing_column")
)
"""The properties kept as columns (the manifest has the name; the extension check is its own
column; DICOM's Rows and Columns repeat height and width)."""
SCALAR_PROPERTIES = tuple(
    PREFIX + p for p in ("width", "height", "file_bytes", "mean", "std", "rms_contrast", "sharpness")
)
"""Numeric properties the profile and the drift monitor compare between data sets."""
CONTENT_HASH = PREFIX + "sha256"
FOUND, READABLE, EXTENSION = PREFIX + "found", PREFIX + "readable", PREFIX + "extension_matches"
DUPLICATE = PREFIX + "duplicate"
"""True where the image repeats an earlier row's (same bytes, or a near-identical pHash)."""
NEAR_BLOCK = 2048
"""Rows compared at once in the near-duplicate search (a block x rows matrix of 64-bit hashes)."""
UNREADABLE = {"empty", "truncated", "unreadable", "unsupported", "too_many_pixels"}
"""error_check values of a file that cannot be used (format_mismatch still decodes)."""


def measure(frame: pd.DataFrame, image_column: str, settings: ImageSettings) -> pd.DataFrame:
    """The manifest with image_<property> columns, image_found, image_readable and
    image_extension_matches; the files are read and measured in `settings.workers` processes."""
    rows = property_table(
        frame[image_column].astype(str).tolist(),
        read_location,
        workers=max(1, settings.workers),
        max_pixels=settings.bounds.max_pixels,
    )
    table = pd.DataFrame.from_records(rows, columns=["extension_matches", *MEASURED], index=frame.index)
    checks = table["error_check"]
    measured = table[list(MEASURED)].add_prefix(PREFIX)
    measured[FOUND] = (checks != "missing").to_numpy()
    measured[READABLE] = (~checks.isin(UNREADABLE | {"missing"})).to_numpy()
    measured[EXTENSION] = table["extension_matches"].fillna(True).astype(bool).to_numpy()
    measured[DUPLICATE] = duplicates(table["sha256"], table["phash"], settings.bounds.near_duplicate_bits)
    existing = [c for c in measured.columns if c in frame.columns]
    return pd.concat([frame.drop(columns=existing), measured], axis=1)


def modes(frame: pd.DataFrame) -> pd.Series:
    """Each row's "WxH, B-bit, C channel(s)" from its measured properties (None if unmeasured)."""
    columns = [PREFIX + p for p in ("width", "height", "bit_depth", "channels")]
    known = frame[columns].notna().all(axis=1)
    values = frame[columns].where(known, 0).astype("int64")
    text = (
        values[columns[0]].astype(str)
        + "x"
        + values[columns[1]].astype(str)
        + ", "
        + values[columns[2]].astype(str)
        + "-bit, "
        + values[columns[3]].astype(str)
        + np.where(values[columns[3]] == 1, " channel", " channels")
    )
    return text.where(known, None)


def duplicates(
    sha256: pd.Series, phash: pd.Series, near_bits: int | None = NEAR_DUPLICATE_BITS
) -> np.ndarray:
    """Per row: does an earlier row hold the same bytes, or (`near_bits` set) a pHash at most
    that many bits away?"""
    exact = sha256.notna().to_numpy() & sha256.duplicated(keep="first").to_numpy()
    if near_bits is None:
        return exact
    known = phash.notna().to_numpy()
    hashes = np.array([int(h, 16) for h in phash[known]], dtype=np.uint64)
    near = np.zeros(len(hashes), dtype=bool)
    for start in range(0, len(hashes), NEAR_BLOCK):
        block = hashes[start : start + NEAR_BLOCK]
        distance = np.bitwise_count(block[:, None] ^ hashes[None, : start + len(block)])
        close = distance <= near_bits
        close[:, start:] &= np.tri(len(block), len(block), -1, dtype=bool)  # earlier rows only
        near[start : start + len(block)] = close.any(axis=1)
    result = exact.copy()
    result[np.flatnonzero(known)] |= near
    return result


def bound_rules(bounds: ImageBounds, image_column: str) -> dict[str, ColumnRule]:
    """Column rules of the bounds: each failing row names its image (and image_error says why).
    The image column itself holds locations (text), one in every row."""
    from components.common.config import ColumnRule

    severity = bounds.severity
    rules: dict[str, Any] = {
        image_column: ColumnRule(type="string", max_null_fraction=0.0),
        FOUND: ColumnRule(allowed=[True], max_null_fraction=0.0),
        READABLE: ColumnRule(allowed=[True], max_null_fraction=0.0),
        EXTENSION: ColumnRule(allowed=[True], severity=severity),
        DUPLICATE: ColumnRule(
            allowed=[False], allowed_share=1 - bounds.max_duplicate_fraction, severity=severity
        ),
        PREFIX + "format": ColumnRule(allowed=list(bounds.formats), severity=severity, max_null_fraction=1.0),
        PREFIX + "width": ColumnRule(
            min=bounds.min_width, max=bounds.max_width, severity=severity, max_null_fraction=1.0
        ),
        PREFIX + "height": ColumnRule(
            min=bounds.min_height, max=bounds.max_height, severity=severity, max_null_fraction=1.0
        ),
        PREFIX + "file_bytes": ColumnRule(
            max=bounds.max_file_bytes, severity=severity, max_null_fraction=1.0
        ),
    }
    if bounds.channels is not None:
        rules[PREFIX + "channels"] = ColumnRule(
            allowed=list(bounds.channels), severity=severity, max_null_fraction=1.0
        )
    if bounds.bit_depths is not None:
        rules[PREFIX + "bit_depth"] = ColumnRule(
            allowed=list(bounds.bit_depths), severity=severity, max_null_fraction=1.0
        )
    return rules
