"""Markdown reference of every config field, generated from the typed models (the docs site's config page)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from components.common.config import KubeloopConfig


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value: Any = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value)}`"


def _nested(field: FieldInfo) -> type[BaseModel] | None:
    candidates = getattr(field.annotation, "__args__", (field.annotation,))
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        doc = " ".join((field.description or "").split()).replace("|", "\\|")
        nested = _nested(field)
        rows.append(f"| `{key}` | {_default(field)} | {doc} |")
        if nested is not None:
            rows += _rows(nested, f"{key}.")
    return rows


def render() -> str:
    """The reference table: key, default, meaning."""
    header = ["| key | default | meaning |", "|---|---|---|"]
    return "\n".join(header + _rows(KubeloopConfig, "")) + "\n"


if __name__ == "__main__":
    print(render(), end="")
