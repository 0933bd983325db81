"""What varies with the kind of data (tables today, images next) lives behind `Modality`."""

from __future__ import annotations

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

MODALITIES: dict[str, type[Modality]] = {TabularModality.name: TabularModality}
"""Every modality by its `dataset.modality` name."""


def modality_for(name: str) -> Modality:
    """The modality named `name`.

    Raises:
        ValueError: `name` is not a known modality.
    """
    try:
        return MODALITIES[name]()
    except KeyError:
        known = ", ".join(MODALITIES)
        raise ValueError(f"unknown modality {name!r}; dataset.modality is one of {known}") from None
