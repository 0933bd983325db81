"""The gate's gallery: what failed or stands out, shown as the rows themselves.

Per failed or warned column check, a few of the rows that break it; then the outliers (rows
whose measured properties lie furthest from the batch's median, in robust z-scores); then the
rows of devices and modes the reference never had. Images show as thumbnails (the modality
draws them), with the file name and why it failed; table rows show their values.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

import numpy as np
import pandas as pd

from components.common.config import ValidationConfig
from components.common.modalities import Modality
from components.validate_data.checks import CheckResult
from components.validate_data.report import failing_mask

GALLERY_FILE = "gate_gallery.html"
"""The gallery page in the validate step's folder (and the KFP UI's HTML output)."""
PER_SECTION = 8
"""Rows shown per check, per new device or mode, and as outliers."""
OUTLIER_Z = 4.0
"""A robust z-score (distance from the median over 1.4826 MAD) at least this far is an outlier."""
STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
.gallery{display:flex;flex-wrap:wrap;gap:.6em;align-items:flex-start}
.gallery figure{margin:0;text-align:center;width:150px}
.gallery img{width:96px;image-rendering:pixelated;border:1px solid #ccc}
.gallery figcaption{font-size:75%;color:#555;overflow-wrap:anywhere}
.gallery table{font-size:75%;border-collapse:collapse;table-layout:fixed;width:240px;text-align:left}
.gallery figure:has(table){width:240px}.gallery th{width:30%}
.gallery td,.gallery th{overflow-wrap:anywhere;vertical-align:top}
.gallery td,.gallery th{border:1px solid #ddd;padding:1px 4px}"""


def gate_gallery(
    frame: pd.DataFrame,
    results: Sequence[CheckResult],
    rules: ValidationConfig,
    modality: Modality,
    shown: Sequence[str],
    scalar_columns: Sequence[str],
    unexpected: pd.Series | None = None,
    devices: pd.Series | None = None,
    title: str = "",
) -> str:
    """The gallery as a whole HTML page.

    Args:
        frame: The gate's table.
        results: Every check's result.
        rules: The rules the checks ran with (which values a failing row breaks).
        modality: Draws the thumbnails.
        shown: Columns captioned under each row (the file and its error, or a table's features).
        scalar_columns: The measured columns outliers are sought in.
        unexpected: Per row, "device, mode" text where the device or its mode is new to the
            reference (None or empty elsewhere).
        devices: Each row's device: outliers are sought within each (devices differ).
        title: What was validated (the dataset's path).
    """
    sections = []
    flagged = pd.Series(False, index=frame.index)
    for result in results:
        if result.passed or result.column is None or result.column not in frame.columns:
            continue
        mask = failing_mask(frame, result, rules)
        if mask.any():
            flagged |= mask
            heading = f"{result.check} on {result.column}: {int(mask.sum())} row(s)"
            # A flag column (image_found) says no more than the heading; a value does.
            extra = [] if pd.api.types.is_bool_dtype(frame[result.column]) else [result.column]
            sections.append(_section(heading, frame[mask], modality, shown, extra))
    outliers, reasons = _outliers(frame[~flagged], scalar_columns, devices)
    if len(outliers):
        rows = frame.loc[outliers]
        within = " of their device" if devices is not None else ""
        sections.append(
            _section(
                f"outliers: the {len(rows)} rows furthest from the median{within} "
                f"(robust z >= {OUTLIER_Z:g})",
                rows,
                modality,
                shown,
                [],
                reasons,
            )
        )
    if unexpected is not None:
        for label, rows in frame.groupby(unexpected.reindex(frame.index)).groups.items():
            sections.append(
                _section(
                    f"new to the reference: {label} ({len(rows)} rows)", frame.loc[rows], modality, shown, []
                )
            )
    body = "".join(sections) or "<p>Nothing failed and nothing stands out.</p>"
    return (
        "<!doctype html><html><head><meta charset=utf-8><title>Data gate gallery</title>"
        f"<style>{STYLE}</style></head><body><h1>Data gate gallery</h1>"
        f"<p>{html.escape(title)}: what failed or stands out, {PER_SECTION} rows at most per section.</p>"
        f"{body}</body></html>"
    )


def _outliers(
    frame: pd.DataFrame, columns: Sequence[str], devices: pd.Series | None
) -> tuple[pd.Index, list[str]]:
    """The rows of largest robust z-score within their device (at least OUTLIER_Z), each with
    the column that makes it one."""
    numeric = [c for c in columns if c in frame.columns and pd.api.types.is_numeric_dtype(frame[c])]
    if not numeric or frame.empty:
        return frame.index[:0], []
    values = frame[numeric].astype(float)
    groups = values.groupby(
        devices.reindex(frame.index) if devices is not None else pd.Series(0, index=frame.index)
    )
    median = groups.transform("median")
    spread = 1.4826 * (values - median).abs().groupby(groups.ngroup()).transform("median")
    z = ((values - median) / spread.where(spread > 0)).abs().fillna(0.0)
    worst = z.max(axis=1)
    ranked = worst[worst >= OUTLIER_Z].sort_values(ascending=False, kind="stable").index[:PER_SECTION]
    reasons = [
        f"{column} {frame.at[row, column]:.4g} (z {z.at[row, column]:.1f})"
        for row in ranked
        for column in [str(z.loc[row].idxmax())]
    ]
    return ranked, reasons


def _section(
    heading: str,
    rows: pd.DataFrame,
    modality: Modality,
    shown: Sequence[str],
    extra: Sequence[str],
    reasons: Sequence[str] = (),
) -> str:
    picked = rows.head(PER_SECTION)
    pictures = modality.thumbnails(picked)
    captions = [c for c in dict.fromkeys([*shown, *extra]) if c in picked.columns]
    tiles = []
    for index, ((_, row), picture) in enumerate(zip(picked.iterrows(), pictures, strict=True)):
        reason = reasons[index] if index < len(reasons) else ""
        tiles.append(_tile(row, picture, captions, reason))
    return f"<h2>{html.escape(heading)}</h2><div class=gallery>{''.join(tiles)}</div>"


def _tile(row: pd.Series, picture: bytes | None, captions: Sequence[str], reason: str) -> str:
    """A row's thumbnail captioned with its values, or (a table row, a file that cannot be
    drawn) its values as a small table."""
    values = [(c, row[c]) for c in captions if not _empty(row[c])]
    if picture is not None:
        head = f'<img alt="image" src="data:image/png;base64,{base64.b64encode(picture).decode()}">'
        lines = [html.escape(f"{c}: {_short(v)}") for c, v in values]
    else:
        cells = "".join(
            f"<tr><th>{html.escape(str(c))}</th><td>{html.escape(_short(v))}</td></tr>" for c, v in values
        )
        head, lines = f"<table>{cells}</table>", []
    if reason:
        lines.append(html.escape(reason))
    return f"<figure>{head}<figcaption>{'<br>'.join(lines)}</figcaption></figure>"


def _short(value: object) -> str:
    """Values as text; locations by their last two path parts (the folder and the file)."""
    text = str(value)
    if "/" in text and " " not in text:
        text = "/".join(text.rsplit("/", 2)[-2:])
    return text


def _empty(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
