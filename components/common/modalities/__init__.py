"""What varies with the kind of data (tables today, images next) lives behind `Modality`."""

from __future__ import annotations

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
from components.common.modalities.images import ImagesModality
from components.common.modalities.tabular import TabularModality

__all__ = [
    "INPUTS_FILE",
    "MAX_ROWS",
    "BadInput",
    "Codec",
    "ImagesModality",
    "Inputs",
    "Modality",
    "ServedBatch",
    "TabularModality",
    "modality_for",
]

MODALITIES: dict[str, type[Modality]] = {
    TabularModality.name: TabularModality,
    ImagesModality.name: ImagesModality,
}
"""Every modality by its `dataset.modality` name."""


def modality_for(name: str, settings: Mapping[str, Any] | None = None) -> Modality:
    """The modality named `name`, told its settings (`DatasetConfig.modality_settings`).

    Raises:
        ValueError: `name` is not a known modality.
    """
    try:
        kind = MODALITIES[name]
    except KeyError:
        known = ", ".join(MODALITIES)
        raise ValueError(f"unknown modality {name!r}; dataset.modality is one of {known}") from None
    return kind.from_settings(settings or {})
