"""A window's embedding-drift page: the verdict, and the served images the domain classifier finds
least like the version's held-out images, as thumbnails where the image was kept
(`deployment.serving.sample_share`), with their properties and request ids."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

PROPERTIES = ("image_width", "image_height", "image_bit_depth", "image_mean", "image_std", "image_sharpness")
"""The logged properties shown under each atypical image."""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin-bottom: 4px; }
.verdict { font-size: 15px; margin: 8px 0 20px; }
.drifted { color: #b3261e; font-weight: 600; }
.stable { color: #1b6e2a; font-weight: 600; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; }
.card { width: 150px; border: 1px solid #ddd; border-radius: 6px; padding: 8px; font-size: 11px; }
.card img { width: 134px; height: 134px; object-fit: contain; background: #000; display: block; }
.missing { width: 134px; height: 134px; background: #eee; color: #777; display: flex;
  align-items: center; justify-content: center; text-align: center; }
.rank { font-weight: 600; font-size: 12px; }
td { padding: 0 4px 0 0; }
"""


def embedding_report_html(
    window: str,
    verdict: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    thumbnails: Sequence[bytes | None],
) -> str:
    """The page.

    Args:
        window: The window's name.
        verdict: The check's embedding_drift record (method, score, threshold, drifted, detail).
        rows: The atypical served rows, most atypical first (request_id, row, features, stored).
        thumbnails: A PNG per row, None where the image was not kept.
    """
    state = "drifted" if verdict.get("drifted") else "stable"
    cards = []
    for rank, (row, thumbnail) in enumerate(zip(rows, thumbnails, strict=True), 1):
        if thumbnail is not None:
            picture = (
                f'<img alt="served image" src="data:image/png;base64,{base64.b64encode(thumbnail).decode()}">'
            )
        else:
            picture = '<div class="missing">not kept<br>(sample_share)</div>'
        features = row.get("features") or {}
        cells = "".join(
            f"<tr><td>{html.escape(name[6:])}</td><td>{_number(features.get(name))}</td></tr>"
            for name in PROPERTIES
            if name in features
        )
        cards.append(
            f'<div class="card"><div class="rank">#{rank}</div>{picture}'
            f"<div>request {html.escape(str(row.get('request_id', '')))} row {row.get('row', 0)}</div>"
            f"<table>{cells}</table></div>"
        )
    title = f"<h2>The {len(rows)} served images least like the held-out ones</h2>"
    listing = (
        f'{title}<div class="grid">{"".join(cards)}</div>'
        if rows
        else "<p>No per-image scores: the method is not the domain classifier.</p>"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Embedding drift "
        f"{html.escape(window)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Embedding drift, window {html.escape(window)}</h1>"
        f'<div class="verdict"><span class="{state}">{state}</span>: '
        f"{html.escape(str(verdict.get('detail', '')))} (method {html.escape(str(verdict.get('method')))}, "
        f"{verdict.get('rows', '?')} served rows against {verdict.get('reference_rows', '?')} held-out)</div>"
        f"{listing}</body></html>"
    )


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))
