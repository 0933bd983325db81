"""The modality interface: how data of one kind is read, gated, encoded, modelled and served.

Steps hold a `Modality` (chosen once from `dataset.modality`, recorded in the dataset schema)
and call it; they never ask which one it is. This module imports numpy and pandas only (the
serving environment imports it); torch is imported inside the methods that need it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

    from components.common.artifacts import DatasetSchema
    from components.common.commented_yaml import Entry
    from components.common.config import ColumnRule
    from components.common.modalities.batches import TrainingBatches
    from components.common.model_spec import ModelSpec
    from components.common.store import Store
    from components.common.tasks import Task
    from components.common.training_config import TrainingConfig

INPUTS_FILE = "preprocessing.json"
"""The fitted input spec, saved with every model version beside model.onnx."""
LOG_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)
"""The request log's one encoder (json.dumps with options builds a new one per call); codecs
encode their log members with it so every line reads the same."""


def features_of(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The logged feature columns (`features.<name>`) of flattened request-log rows under their
    own names; absent ones are NaN. The monitor and retraining read served features through it."""
    return pd.DataFrame(
        {n: rows[f"features.{n}"] if f"features.{n}" in rows else pd.NA for n in names}, index=rows.index
    )


MAX_ROWS = 10_000
"""Rows (or images) per request; larger batches are refused (split them) so one caller cannot
stall a worker."""


class Inputs(Protocol):
    """The input spec fitted on the training split and saved with the model (`INPUTS_FILE`)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""


class ServedBatch(Protocol):
    """Checked request rows, ready for the model; what the request log records of each row."""

    @property
    def n_rows(self) -> int:
        """Rows in the request."""


@dataclass(frozen=True)
class ServedFile:
    """A file a request carried: its content hash, the extension its format takes, its bytes."""

    sha256: str
    extension: str
    data: bytes


class BadInput(ValueError):
    """A request the model cannot score; the message names the problem and the fix (a 400)."""


class Codec(ABC):
    """Serving's side of a modality: request payload -> checked batch -> model feed and log text."""

    logs_embedding: bool = False
    """Whether each logged row carries the model's embedding output (where the graph has one):
    the monitor's drift input for inputs with no scalar features of their own, such as images."""

    def wants_embedding(self, batch: ServedBatch) -> bool:
        """Whether the request asked for the embedding in its answer."""
        return False

    def files(self, batch: ServedBatch) -> list[ServedFile | None]:
        """Per row, the file it arrived as, for the sample of served inputs kept for retraining
        (None for rows sent as values)."""
        return [None] * batch.n_rows

    @abstractmethod
    def decode(self, payload: Any, names: Sequence[str] | None, max_rows: int) -> ServedBatch:
        """Check and convert one request's payload.

        Raises:
            BadInput: The payload cannot be scored; the message says what to change.
        """

    @abstractmethod
    def feed(self, batch: ServedBatch) -> dict[str, np.ndarray]:
        """The ONNX model's inputs for the batch."""

    @abstractmethod
    def log_members(self, batch: ServedBatch) -> list[str]:
        """Per row, the JSON members the request log records of its input (no surrounding braces)."""

    @abstractmethod
    def example(self) -> ServedBatch:
        """One row of the training data's typical values (the readiness probe scores it)."""

    @abstractmethod
    def example_payload(self, rows: int) -> Any:
        """A request payload of `rows` typical rows, as a client sends them (`decode` reads it):
        what a fresh server scores before its first client, to warm up its decode path."""

    @abstractmethod
    def metadata(self) -> list[dict[str, Any]]:
        """The inputs as Seldon's /metadata describes them."""


@dataclass
class Starter:
    """What `kubeloop init` writes for a table of this modality's kind (`Modality.starter`)."""

    entries: list[Entry] = field(default_factory=list)
    """dataset keys: the modality and its settings, each with why."""
    infers_features: bool = False
    """Whether the table's other columns are the model's features (typed, categorised, ruled)."""
    problems: list[str] = field(default_factory=list)
    """What could not be read while profiling (said in the starter's header)."""


class Modality(ABC):
    """One kind of data: tables today, images next (see DESIGN.md, the two seams)."""

    @classmethod
    def input_columns(cls, frame: pd.DataFrame) -> list[str] | None:
        """The columns of `frame` this modality reads its inputs from when the table is of its
        kind (an image manifest's path column), else None. Tables claim any table, with none."""
        return None

    @classmethod
    def starter(cls, frame: pd.DataFrame, columns: list[str], manifest: str, device: str | None) -> Starter:
        """The dataset settings `kubeloop init` writes for `frame` (`columns`: `input_columns`'s;
        `manifest`: the table's path or s3:// URI, where relative paths in it start; `device`:
        the guessed device column)."""
        return Starter()

    monitors_embeddings: ClassVar[bool] = False
    """Whether a version keeps its held-out rows' embeddings (embedding_reference.npy) for the
    monitor's embedding drift: inputs with no features of their own to compare, such as images."""

    name: ClassVar[str]
    input_name: ClassVar[str] = "features"
    """The ONNX model's input name."""

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Modality:
        """The modality told its settings (`DatasetConfig.modality_settings`; tables need none)."""
        return cls()

    @abstractmethod
    def read(self, path: Path, source: str | None = None) -> pd.DataFrame:
        """The dataset file as a table (tabular: the rows; images: the manifest).

        Args:
            path: A local copy of the file.
            source: Where it came from (dataset.path: a path or s3:// URI), which relative
                references inside it (image files) are resolved against. Default: `path`.
        """

    def request(self, rows: pd.DataFrame, features: list[str]) -> dict[str, Any]:
        """The data of a Seldon request for `rows`, as a client sends them (tables: the named
        features as an ndarray); the caller adds `meta`."""
        return {"data": {"names": features, "ndarray": rows[features].astype(object).values.tolist()}}

    def served_inputs(self, rows: pd.DataFrame, features: list[str], store: Store) -> pd.DataFrame:
        """The dataset's input columns of served rows (the request log's flattened rows), for
        retraining, on the rows' index; rows whose input the log does not hold are left out
        (tables: the logged `features.<name>`, absent ones NaN)."""
        return features_of(rows, features)

    def gate_table(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The table the data gate's column checks run on (images: the manifest and each
        image's measured properties beside it)."""
        return frame

    def gate_rules(self) -> dict[str, ColumnRule]:
        """Column rules the modality adds to `validation.columns` (images: the bounds on the
        property columns); the config's own rules win on the same column."""
        return {}

    def scalar_columns(self, features: list[str]) -> list[str]:
        """The columns the data profile and its reference compare, given the features
        (tables: the features; images: the image properties)."""
        return list(features)

    def identity_columns(self, features: list[str]) -> list[str]:
        """The columns whose equal values make two rows the same example, for the split's
        leakage check (tables: the features; images: the content hash)."""
        return list(features)

    def modes(self, frame: pd.DataFrame) -> pd.Series | None:
        """Each row's acquisition mode, as text, on the gate's table (images: size, bit depth
        and channels, e.g. "96x64, 8-bit, 1 channel"; None for a row whose image cannot be
        read); None where rows have no such thing."""
        return None

    def gallery_columns(self, features: list[str]) -> list[str]:
        """The columns a gallery captions each row with (tables: the features; images: the
        file and why it failed)."""
        return list(features)

    def thumbnails(self, frame: pd.DataFrame, side: int = 96) -> list[bytes | None]:
        """A small PNG of each row's input, for galleries (tables: none; their values show)."""
        return [None] * len(frame)

    @abstractmethod
    def drift_columns(self, schema: DatasetSchema) -> tuple[list[str], list[str]]:
        """(columns, the categorical ones among them): the scalar columns the drift monitor
        compares (tabular: the features; images: properties and embedding components)."""

    @abstractmethod
    def fit_inputs(self, train: pd.DataFrame, schema: DatasetSchema, training: TrainingConfig) -> Inputs:
        """Fit the input spec on the training split only (`training` holds its settings)."""

    @abstractmethod
    def load_inputs(self, data: Mapping[str, Any]) -> Inputs:
        """The input spec from its saved JSON form."""

    @abstractmethod
    def arrays(self, inputs: Inputs, frame: pd.DataFrame) -> np.ndarray:
        """The model's input tensor for every row of a split, float32, in memory."""

    def feed(self, inputs: Inputs, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The ONNX model's inputs for every row of a split (what evaluation scores)."""
        return {self.input_name: self.arrays(inputs, frame)}

    @abstractmethod
    def training_batches(
        self,
        inputs: Inputs,
        frames: tuple[pd.DataFrame, pd.DataFrame],
        targets: tuple[np.ndarray, np.ndarray],
        training: TrainingConfig,
    ) -> TrainingBatches:
        """The training and validation splits as the recipe's loop reads them.

        Args:
            frames: (train, validation) rows of the splits.
            targets: Their loss targets, as `Task.loss_targets` gives them.
        """

    @abstractmethod
    def baseline_arrays(self, inputs: Inputs, frame: pd.DataFrame) -> np.ndarray:
        """Inputs for the linear baseline model that evaluation compares against."""

    @abstractmethod
    def model_spec(self, inputs: Inputs, task: Task) -> ModelSpec:
        """What a model factory is told of the inputs and outputs."""

    @abstractmethod
    def default_model(self, training: TrainingConfig) -> tuple[str, dict[str, Any]]:
        """(import path, keyword arguments) of the built-in model factory for these settings."""

    def example_input(self, spec: ModelSpec, rows: np.ndarray | None = None) -> torch.Tensor:
        """A batch of two inputs for tracing and ONNX export: `rows` (real ones) or zeros of
        the spec's input shape."""
        import torch

        if rows is not None:
            return torch.from_numpy(np.ascontiguousarray(rows[:2], dtype=np.float32))
        return torch.zeros(2, *spec.input_shape, dtype=torch.float32)

    @abstractmethod
    def codec(self, inputs: Inputs, schema: DatasetSchema) -> Codec:
        """Serving's request codec for a version with these inputs."""
