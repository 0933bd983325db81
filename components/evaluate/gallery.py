"""The error gallery: the test split's most confident mistakes of each kind, grouped by slice.

A confident false negative (or a confidently wrong class) is where the next idea starts: a
device, a finding or a label the model has not learnt. Images show as thumbnails (the
modality draws them); table rows show their feature values.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import SliceSpec
from components.common.modalities import Modality
from components.common.tasks import Task

PER_KIND = 12
"""Mistakes shown per kind (the most confident first)."""
GALLERY_FILE = "error_gallery.html"
"""The gallery's HTML fragment in evaluate's folder and in each model version (the card inlines it)."""


def _slice_label(row: pd.Series, slices: Sequence[SliceSpec]) -> str:
    """The row's value in the first configured slice column that it has ('all' without one)."""
    for spec in slices:
        if spec.column in row.index and spec.bins is None:
            return f"{spec.column}={row[spec.column]}"
    return "all"


def error_gallery(
    test: pd.DataFrame,
    task: Task,
    targets: np.ndarray,
    probabilities: np.ndarray,
    point: Mapping[str, Any],
    modality: Modality,
    features: Sequence[str],
    slices: Sequence[SliceSpec] = (),
    per_kind: int = PER_KIND,
) -> str:
    """The gallery as an HTML fragment: per kind of error, its most confident cases by slice."""
    decisions = task.decide(probabilities, point)
    sure = task.confidence(probabilities, decisions)
    sections = []
    for kind, mask in task.errors(targets, decisions).items():
        rows = np.flatnonzero(mask)
        if not len(rows):
            continue
        chosen = rows[np.argsort(-sure[rows], kind="stable")[:per_kind]]
        picked = test.iloc[chosen]
        pictures = modality.thumbnails(picked)
        groups: dict[str, list[str]] = {}
        for (_, row), picture, confidence in zip(picked.iterrows(), pictures, sure[chosen], strict=True):
            groups.setdefault(_slice_label(row, slices), []).append(
                _tile(row, picture, float(confidence), features)
            )
        body = "".join(
            f"<h4>{html.escape(label)}</h4><div class=gallery>{''.join(tiles)}</div>"
            for label, tiles in sorted(groups.items())
        )
        sections.append(
            f"<h3>{html.escape(kind)}: {len(rows)} on the test split, the {len(chosen)} most confident</h3>"
            + body
        )
    if not sections:
        return "<p>No errors on the test split.</p>"
    return "".join(sections)


def _tile(row: pd.Series, picture: bytes | None, confidence: float, features: Sequence[str]) -> str:
    """One mistake: its thumbnail (or its feature values) and how sure the model was."""
    caption = f"p(decided) {confidence:.3f}"
    if picture is not None:
        source = base64.b64encode(picture).decode()
        return (
            f'<figure><img alt="error" src="data:image/png;base64,{source}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    values = "".join(
        f"<tr><th>{html.escape(str(f))}</th><td>{html.escape(str(row[f]))}</td></tr>"
        for f in features
        if f in row.index
    )
    return f"<figure><table>{values}</table><figcaption>{html.escape(caption)}</figcaption></figure>"
