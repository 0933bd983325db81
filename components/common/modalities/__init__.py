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
    "modality_for",
]

MODALITIES: dict[str, str] = {
    TabularModality.name: "components.common.modalities.tabular:TabularModality",
    "images": "components.common.modalities.images:ImagesModality",
}
"""Every modality by its `dataset.modality` name, imported when chosen: the serving environment
of a tabular model never loads the image libraries."""


def modality_for(name: str, settings: Mapping[str, Any] | None = None) -> Modality:
    """The modality named `name`, told its settings (`DatasetConfig.modality_settings`).

    Raises:
        ValueError: `name` is not a known modality.
    """
    try:
        module, _, attribute = MODALITIES[name].partition(":")
    except KeyError:
        known = ", ".join(MODALITIES)
        raise ValueError(f"unknown modality {name!r}; dataset.modality is one of {known}") from None
    kind: type[Modality] = getattr(importlib.import_module(module), attribute)
    return kind.from_settings(settings or {})
