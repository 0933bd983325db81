"""What varies with the kind of data (tables today, images next) lives behind `Modality`."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from components.common.modalities.base import (
    INPUTS_FILE,
    MAX_ROWS,
    BadInput,
    Codec,
    Inputs,
    Modality,
    ServedBatch,
)
from components.common.modalities.tabular import TabularModality

__all__ = [
    "INPUTS_FILE",
    "MAX_ROWS",
    "BadInput",
    "Codec",
    "Inputs",
    "Modality",
    "ServedBatch",
    "TabularModality",
    "modality_class",
    "modality_for",
    "modality_of_table",
]

MODALITIES: dict[str, str] = {
    TabularModality.name: "components.common.modalities.tabular:TabularModality",
    "images": "components.common.modalities.images:ImagesModality",
}
"""Every modality by its `dataset.modality` name, imported when chosen: the serving environment
of a tabular model never loads the image libraries."""


STARTER_ORDER = ("images", "tabular")
"""The order `kubeloop init` asks the modalities whether a table is of their kind: the most
particular first (a manifest is a table too)."""


def modality_class(name: str) -> type[Modality]:
    """The class of the modality named `name` (imported now)."""
    try:
        module, _, attribute = MODALITIES[name].partition(":")
    except KeyError:
        known = ", ".join(MODALITIES)
        raise ValueError(f"unknown modality {name!r}; dataset.modality is one of {known}") from None
    kind: type[Modality] = getattr(importlib.import_module(module), attribute)
    return kind


def modality_of_table(frame: Any) -> tuple[type[Modality], list[str]]:
    """The first modality in STARTER_ORDER that claims `frame`, with the columns it reads."""
    for name in STARTER_ORDER:
        kind = modality_class(name)
        columns = kind.input_columns(frame)
        if columns is not None:
            return kind, columns
    raise ValueError("no modality claims the table")


def modality_for(name: str, settings: Mapping[str, Any] | None = None) -> Modality:
    """The modality named `name`, told its settings (`DatasetConfig.modality_settings`).

    Raises:
        ValueError: `name` is not a known modality.
    """
    return modality_class(name).from_settings(settings or {})
