"""Typed artifact records the steps trade, and the one place that spells the store's key layout.

Standard library only: the serving environment imports this module too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.common.modalities import Modality
    from components.common.store import Store
    from components.common.tasks import Task

SPLIT_NAMES = ("train", "validation", "calibration", "test")
"""Every split validate_data writes, in order."""

SCHEMA_FILE = "schema.json"
"""The dataset schema's file name, in a validate_data prefix and in every model version."""


def split_key(splits: str, name: str) -> str:
    """Key of one split's Parquet file under a validate_data prefix."""
    return f"{splits}/splits/{name}.parquet"


def schema_key(prefix: str) -> str:
    """Key of the dataset schema under a validate_data prefix or a model version prefix."""
    return f"{prefix}/{SCHEMA_FILE}"


def model_root(name: str) -> str:
    """Registry prefix of one model (its versions and stages)."""
    return f"models/{name}"


def version_prefix(name: str, version: int | str) -> str:
    """Registry prefix of one model version (model.onnx, calibration.json, card.html, ...)."""
    return f"{model_root(name)}/{version}"


@dataclass(frozen=True)
class DatasetSchema:
    """What validate_data learnt of the dataset; every later step and serving read it."""

    features: list[str]
    """Feature columns, in the model's input order."""
    categorical: list[str]
    """The features encoded as categories."""
    label: str
    """The label column."""
    positive_value: int | str
    """The label value of the class of interest."""
    splits: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per split: rows and the task's label summary (binary: prevalence)."""
    fingerprint: str = ""
    """Fingerprint of the dataset file the splits came from."""
    task: str = "binary"
    """The prediction task (`dataset.task`); versions written before it existed are binary."""
    classes: list[str] | None = None
    """Multi-class: the output order (from dataset.classes or the training split's labels)."""
    modality: str = "tabular"
    """The kind of data (`dataset.modality`); versions written before it existed are tabular."""
    modality_settings: dict[str, Any] = field(default_factory=dict)
    """What the modality was told by the config (images: the image column and settings)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (schema.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetSchema:
        """From schema.json, tolerating the fields that older versions lack.

        Raises:
            ValueError: A required field is missing; the message names it.
        """
        missing = [name for name in ("features", "label") if name not in data]
        if missing:
            raise ValueError(f"dataset schema lacks {missing}; it was not written by validate_data")
        return cls(
            features=list(data["features"]),
            categorical=list(data.get("categorical", [])),
            label=str(data["label"]),
            positive_value=data.get("positive_value", 1),
            splits={str(k): dict(v) for k, v in data.get("splits", {}).items()},
            fingerprint=str(data.get("fingerprint", "")),
            task=str(data.get("task", "binary")),
            classes=[str(c) for c in data["classes"]] if data.get("classes") is not None else None,
            modality=str(data.get("modality", "tabular")),
            modality_settings=dict(data.get("modality_settings") or {}),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> DatasetSchema:
        """From the text of schema.json."""
        return cls.from_dict(json.loads(text))

    @classmethod
    def read(cls, store: Store, prefix: str) -> DatasetSchema:
        """The schema under a validate_data prefix or a model version prefix."""
        return cls.from_dict(store.read_json(schema_key(prefix)))

    def write(self, store: Store, prefix: str) -> None:
        """Write schema.json under `prefix` (the store's writes are atomic)."""
        store.write_json(schema_key(prefix), self.to_dict())

    def make_task(self) -> Task:
        """The `Task` these labels are for."""
        from components.common.tasks import task_for

        return task_for(self.task, self.label, self.positive_value, self.classes)

    def make_modality(self) -> Modality:
        """The `Modality` of this data."""
        from components.common.modalities import modality_for

        return modality_for(self.modality, self.modality_settings)
