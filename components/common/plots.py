"""PNG plots for reports and model cards (matplotlib, headless)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any


def png(draw: Callable[[Any], None], size: tuple[float, float] = (4.5, 4.5)) -> bytes:
    """Draw on one matplotlib Axes and return the figure as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=110)
    try:
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def img_tag(data: bytes, alt: str) -> str:
    """An <img> with the PNG inlined, so the HTML is one self-contained file."""
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
