"""Images: a manifest (one image per row, its label and metadata) of files decoded, fitted and streamed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from components.common.data import DataReadError, read_table
from components.common.image_config import ImageBounds, ImageNormalisation, ImageSettings
from components.common.modalities.base import Codec, Inputs, Modality, Starter
from components.common.modalities.image_prep import ImageInputs, ServedBounds, load, locate
from components.common.model_spec import ModelSpec

if TYPE_CHECKING:
    from components.common.artifacts import DatasetSchema
    from components.common.config import ColumnRule
    from components.common.modalities.batches import TrainingBatches
    from components.common.store import Store
    from components.common.tasks import Task
    from components.common.training_config import TrainingConfig

STATISTICS_SAMPLE = 512
"""Training images read to fit the normalisation (a seeded sample; the mean settles long before)."""
BASELINE_SIDE = 16
"""The linear baseline sees each image shrunk to this many pixels a side."""


class ImagesModality(Modality):
    """Image files named in a manifest; the model sees each at `dataset.image.size`."""

    monitors_embeddings = True

    name = "images"
    input_name = "image"

    def __init__(self, settings: ImageSettings, image_column: str = "image") -> None:
        """The image settings of the config (`dataset.image`) and the manifest's image column."""
        self.settings = settings
        self.image_column = image_column

    @classmethod
    def input_columns(cls, frame: pd.DataFrame) -> list[str] | None:
        """A manifest's column of image file names (None when the table has none)."""
        from components.common.modalities.image_starter import image_column

        column = image_column(frame)
        return None if column is None else [column]

    @classmethod
    def starter(cls, frame: pd.DataFrame, columns: list[str], manifest: str, device: str | None) -> Starter:
        """The input size, channels and gate bounds from headers across every device."""
        from components.common.modalities.image_starter import image_starter

        return image_starter(frame, columns[0], manifest, device)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ImagesModality:
        """From `DatasetConfig.modality_settings` (as recorded in the dataset schema)."""
        return cls(ImageSettings(**settings.get("image", {})), str(settings.get("image_column", "image")))

    def read(self, path: Path, source: str | None = None) -> pd.DataFrame:
        """The manifest, with each image's location resolved (relative paths are beside the manifest).

        Raises:
            DataReadError: The manifest has no image column, or a row has no image.
        """
        frame = read_table(path)
        column = self.image_column
        if column not in frame.columns:
            raise DataReadError(
                f"{path}: the manifest has no column {column!r} (columns: {list(frame.columns)}); "
                "name the column of image paths in dataset.image_column"
            )
        empty = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if empty.any():
            rows = np.flatnonzero(empty.to_numpy())[:10].tolist()
            raise DataReadError(
                f"{path}: {int(empty.sum())} row(s) name no image in {column!r} (rows {rows})"
            )
        manifest = source or str(path)
        return frame.assign(**{column: [locate(str(v), manifest) for v in frame[column]]})

    def request(self, rows: pd.DataFrame, features: list[str]) -> dict[str, Any]:
        """jsonData with each row's image file, base64, as a client uploads it."""
        import base64

        from components.common.modalities.image_prep import read_location

        files = [base64.b64encode(read_location(str(v))).decode() for v in rows[self.image_column]]
        return {"jsonData": {"images": files}}

    def served_inputs(self, rows: pd.DataFrame, features: list[str], store: Store) -> pd.DataFrame:
        """The image column: where each served file was kept (`stored`, under `served/` in the
        store, for the rows `deployment.serving.sample_share` kept); other rows are left out."""
        if "stored" not in rows.columns:
            return pd.DataFrame({self.image_column: pd.Series(dtype=str)})
        kept = rows["stored"].notna()
        keys = rows.loc[kept, "stored"].astype(str)
        return pd.DataFrame({self.image_column: [store.location(k) for k in keys]}, index=keys.index)

    def gate_table(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The manifest with each image's properties (`image_gate.measure`, worker processes)."""
        from components.common.modalities.image_gate import measure

        return measure(frame, self.image_column, self.settings)

    def gate_rules(self) -> dict[str, ColumnRule]:
        """Every image found and readable, its extension true, format, channels, bit depth,
        size and file bytes within `dataset.image.bounds`."""
        from components.common.modalities.image_gate import bound_rules

        return bound_rules(self.settings.bounds, self.image_column)

    def scalar_columns(self, features: list[str]) -> list[str]:
        """The measured properties (size, intensity, contrast, sharpness, file bytes)."""
        from components.common.modalities.image_gate import SCALAR_PROPERTIES

        return list(SCALAR_PROPERTIES)

    def identity_columns(self, features: list[str]) -> list[str]:
        """The file's content hash: the same image under two names is still one image."""
        from components.common.modalities.image_gate import CONTENT_HASH

        return [CONTENT_HASH]

    def gallery_columns(self, features: list[str]) -> list[str]:
        """The image's location and the gate's reason it cannot be used (image_error)."""
        from components.common.modalities.image_gate import PREFIX

        return [self.image_column, PREFIX + "error"]

    def modes(self, frame: pd.DataFrame) -> pd.Series | None:
        """Size, bit depth and channels of each measured image (None where unreadable)."""
        from components.common.modalities.image_gate import modes

        return modes(frame)

    def thumbnails(self, frame: pd.DataFrame, side: int = 96) -> list[bytes | None]:
        """Each row's image, contrast-stretched and shrunk to fit side x side, as PNG (None when
        it cannot be read)."""
        from components.common.modalities.image_prep import thumbnail

        return [thumbnail(str(v), side, self.settings.bounds.max_pixels) for v in frame[self.image_column]]

    def drift_columns(self, schema: DatasetSchema) -> tuple[list[str], list[str]]:
        """The measured image properties, all numeric."""
        return self.scalar_columns(schema.features), []

    def fit_inputs(self, train: pd.DataFrame, schema: DatasetSchema, training: TrainingConfig) -> Inputs:
        """The size, channels and fit of the config; the per-channel statistics of a seeded
        sample of training images (or the configured ones)."""
        settings = self.settings
        inputs = ImageInputs(
            size=settings.size,
            channels=settings.channels,
            fit=settings.fit,
            mean=[0.0] * settings.channels,
            std=[1.0] * settings.channels,
            image_column=self.image_column,
            max_pixels=settings.bounds.max_pixels,
            bounds=served_bounds(settings.bounds),
        )
        if isinstance(settings.normalise, ImageNormalisation):
            mean, std = settings.normalise.mean, settings.normalise.std
        else:
            rng = np.random.default_rng(training.seed)
            locations = train[self.image_column].to_numpy()
            picked = rng.choice(len(locations), size=min(STATISTICS_SAMPLE, len(locations)), replace=False)
            stack = np.stack([load(str(locations[i]), inputs) for i in np.sort(picked)])
            mean = [float(v) for v in stack.mean(axis=(0, 2, 3))]
            std = [max(float(v), 1e-6) for v in stack.std(axis=(0, 2, 3))]
        return replace(inputs, mean=list(mean), std=list(std))

    def load_inputs(self, data: Mapping[str, Any]) -> Inputs:
        """A saved `ImageInputs`."""
        return ImageInputs.from_dict(dict(data))

    def arrays(self, inputs: Inputs, frame: pd.DataFrame) -> np.ndarray:
        """Every row's image prepared, (N, C, H, W) float32 (evaluation's scoring; training streams)."""
        prepared = _inputs(inputs)
        images = [load(str(v), prepared) for v in frame[prepared.image_column]]
        if not images:
            return np.zeros((0, prepared.channels, *prepared.size), dtype=np.float32)
        return np.stack(images)

    def training_batches(
        self,
        inputs: Inputs,
        frames: tuple[pd.DataFrame, pd.DataFrame],
        targets: tuple[np.ndarray, np.ndarray],
        training: TrainingConfig,
    ) -> TrainingBatches:
        """DataLoaders over the files: `dataset.image.workers` decoding processes per rank."""
        from components.common.modalities.image_batches import ImageBatches

        prepared = _inputs(inputs)
        locations = tuple(frame[prepared.image_column].astype(str).tolist() for frame in frames)
        return ImageBatches(
            prepared,
            cast(tuple[Sequence[str], Sequence[str]], locations),
            targets,
            self.settings.augment,
            self.settings.workers,
            self.settings.gpu_decode,
        )

    def baseline_arrays(self, inputs: Inputs, frame: pd.DataFrame) -> np.ndarray:
        """Each image shrunk to 16 x 16 per channel and flattened (a linear model on pixels)."""
        from components.common.modalities.image_prep import fit_size

        images = self.arrays(inputs, frame)
        small = [fit_size(image, (BASELINE_SIDE, BASELINE_SIDE), "stretch") for image in images]
        return np.stack(small).reshape(len(images), -1) if small else np.zeros((0, 0), dtype=np.float32)

    def model_spec(self, inputs: Inputs, task: Task) -> ModelSpec:
        """One input, the image (C, H, W) in [0, 1]; the statistics to normalise it with."""
        prepared = _inputs(inputs)
        return ModelSpec(
            modality=self.name,
            task=task.name,
            input_names=[prepared.image_column],
            numeric=[],
            cardinalities={},
            encoding="pixels",
            classes=list(task.classes),
            n_outputs=task.n_outputs,
            preprocessing=prepared.to_dict(),
            input_shape=[prepared.channels, *prepared.size],
            input_mean=list(prepared.mean),
            input_std=list(prepared.std),
        )

    def default_model(self, training: TrainingConfig) -> tuple[str, dict[str, Any]]:
        """The small CNN of components/train/cnn.py (trains in minutes on two CPU cores)."""
        return "components.train.cnn:small_cnn", {"dropout": training.dropout}

    def codec(self, inputs: Inputs, schema: DatasetSchema) -> Codec:
        """Images in Seldon requests (base64 files), decoded and prepared as in training."""
        from components.common.modalities.image_codec import ImageCodec

        return ImageCodec(_inputs(inputs))


def served_bounds(bounds: ImageBounds) -> ServedBounds:
    """The gate's bounds that serving holds each request's files to."""
    return ServedBounds(
        formats=tuple(bounds.formats),
        channels=tuple(bounds.channels) if bounds.channels is not None else None,
        bit_depths=tuple(bounds.bit_depths) if bounds.bit_depths is not None else None,
        min_width=bounds.min_width,
        max_width=bounds.max_width,
        min_height=bounds.min_height,
        max_height=bounds.max_height,
        max_file_bytes=bounds.max_file_bytes,
    )


def _inputs(inputs: Inputs) -> ImageInputs:
    if not isinstance(inputs, ImageInputs):
        raise TypeError(f"image inputs are an ImageInputs, not {type(inputs).__name__}")
    return inputs
