"""Tables: rows of numeric and categorical features, encoded by `Preprocessing`, served as rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from components.common.data import read_table
from components.common.modalities.base import LOG_ENCODER, Codec, Inputs, Modality, ServedBatch, Starter
from components.common.modalities.tabular_requests import FeatureSchema, Rows, parse
from components.common.model_spec import ModelSpec
from components.common.preprocessing import Preprocessing

if TYPE_CHECKING:
    from components.common.artifacts import DatasetSchema
    from components.common.modalities.batches import TrainingBatches
    from components.common.tasks import Task
    from components.common.training_config import TrainingConfig


class TabularModality(Modality):
    """A CSV or Parquet table; numbers pass raw (standardised in the model), categories encoded."""

    name = "tabular"

    @classmethod
    def input_columns(cls, frame: pd.DataFrame) -> list[str] | None:
        """Any table: its inputs are the feature columns, which the starter infers."""
        return []

    @classmethod
    def starter(cls, frame: pd.DataFrame, columns: list[str], manifest: str, device: str | None) -> Starter:
        """Nothing to set beyond the default modality; the other columns are the features."""
        return Starter(infers_features=True)

    def read(self, path: Path, source: str | None = None) -> pd.DataFrame:
        """The table (`data.read_table`: CSV or Parquet by suffix, readable errors)."""
        return read_table(path)

    def drift_columns(self, schema: DatasetSchema) -> tuple[list[str], list[str]]:
        """Every feature, the categorical ones compared as categories."""
        return list(schema.features), list(schema.categorical)

    def fit_inputs(self, train: pd.DataFrame, schema: DatasetSchema, training: TrainingConfig) -> Inputs:
        """Categories, medians and standardisation statistics of the training split."""
        return Preprocessing.fit(train, schema.features, schema.categorical, training.categorical_encoding)

    def load_inputs(self, data: Mapping[str, Any]) -> Inputs:
        """A saved `Preprocessing`."""
        return Preprocessing.from_dict(dict(data))

    def arrays(self, inputs: Inputs, frame: pd.DataFrame) -> np.ndarray:
        """The encoded rows, float32 (batch, inputs)."""
        return _prep(inputs).encode(frame)

    def training_batches(
        self,
        inputs: Inputs,
        frames: tuple[pd.DataFrame, pd.DataFrame],
        targets: tuple[np.ndarray, np.ndarray],
        training: TrainingConfig,
    ) -> TrainingBatches:
        """Both splits encoded once and held as tensors (tables fit in memory)."""
        from components.common.modalities.batches import ArrayBatches

        (train, validation), (y_train, y_val) = frames, targets
        return ArrayBatches(self.arrays(inputs, train), y_train, self.arrays(inputs, validation), y_val)

    def baseline_arrays(self, inputs: Inputs, frame: pd.DataFrame) -> np.ndarray:
        """One-hot categories whatever the model uses: codes mean nothing to a linear model."""
        from dataclasses import replace

        return replace(_prep(inputs), encoding="one_hot").encode(frame)

    def model_spec(self, inputs: Inputs, task: Task) -> ModelSpec:
        """Input names, numeric features, category cardinalities, outputs and the statistics."""
        prep = _prep(inputs)
        embedding = prep.encoding == "embedding"
        mean, std = prep.scale()
        return ModelSpec(
            modality=self.name,
            task=task.name,
            input_names=prep.encoded_names,
            numeric=list(prep.numeric),
            cardinalities=dict(zip(prep.categorical, prep.cardinalities, strict=True)) if embedding else {},
            encoding=prep.encoding,
            classes=list(task.classes),
            n_outputs=task.n_outputs,
            preprocessing=prep.to_dict(),
            input_shape=[len(prep.encoded_names)],
            input_mean=[float(v) for v in mean],
            input_std=[float(v) for v in std],
        )

    def default_model(self, training: TrainingConfig) -> tuple[str, dict[str, Any]]:
        """The MLP of components/train/model.py, sized by the training section."""
        return "components.train.model:tabular_mlp", {
            "hidden_sizes": training.hidden_sizes,
            "dropout": training.dropout,
            "embedding_size": training.embedding_size,
        }

    def codec(self, inputs: Inputs, schema: DatasetSchema) -> Codec:
        """Rows by name (jsonData) or position (ndarray), checked per feature."""
        return TabularCodec(_prep(inputs), schema)


def _prep(inputs: Inputs) -> Preprocessing:
    if not isinstance(inputs, Preprocessing):
        raise TypeError(f"tabular inputs are a Preprocessing, not {type(inputs).__name__}")
    return inputs


class TabularCodec(Codec):
    """Feature rows in, the encoded matrix out; each row's features go to the request log."""

    def __init__(self, prep: Preprocessing, schema: DatasetSchema) -> None:
        """The version's encoding and its features (nullable where it imputes)."""
        self.prep = prep
        self.features = FeatureSchema.from_schema(schema, frozenset(prep.fill))
        self._keys = [LOG_ENCODER.encode(name) + ":" for name in self.features.features]

    def decode(self, payload: Any, names: Sequence[str] | None, max_rows: int) -> ServedBatch:
        """`tabular_requests.parse`: checked rows, or BadRequest naming the feature and row."""
        return parse(payload, names, self.features, max_rows)

    def feed(self, batch: ServedBatch) -> dict[str, np.ndarray]:
        """{"features": the encoded rows}."""
        return {TabularModality.input_name: self.prep.encode(cast(Rows, batch))}

    def log_members(self, batch: ServedBatch) -> list[str]:
        """`"features":{...}` per row, from pre-encoded keys (json.dumps per row costs more than scoring).
        Checked values are finite floats, text, or None where the version imputes."""
        keys = self._keys
        return [
            '"features":{'
            + ",".join(
                key + (repr(value) if type(value) is float else LOG_ENCODER.encode(value))
                for key, value in zip(keys, values, strict=True)
            )
            + "}"
            for values in cast(Rows, batch).rows()
        ]

    def example(self) -> ServedBatch:
        """The training means of the numbers and the first category of each categorical feature."""
        return parse(self.example_payload(1), None, self.features, 1)

    def example_payload(self, rows: int) -> Any:
        """`rows` copies of the example row (training means, first categories), as named-feature
        objects."""
        row: dict[str, Any] = dict(zip(self.prep.numeric, self.prep.mean, strict=True))
        row |= {c: values[0] for c, values in self.prep.categorical.items() if values}
        return [dict(row) for _ in range(rows)]

    def metadata(self) -> list[dict[str, Any]]:
        """One ndarray input with the feature names."""
        return [{"messagetype": "ndarray", "schema": {"names": self.features.features}}]
