"""The model spec: what a model factory is told about its inputs and outputs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """Inputs and outputs of the network to build, passed to `factory(spec, **params)`.

    Tables: the input tensor is float32 (batch, n_inputs) in `input_names` order: the numeric
    features raw (standardise them with `mean`/`std`, or let the built-in MLP do it), then the
    categories, one-hot (one 0/1 input per known category) or as codes (1..n, 0 for an unseen
    category; `cardinalities` counts the 0). Images: float32 (batch, *input_shape), pixels in
    [0, 1] at the configured size (normalise them with the per-channel `mean`/`std`, or let
    the built-in networks do it). The model returns logits (batch, n_outputs); a model that
    also defines `forward_with_embedding(x) -> (logits, features)` (features (batch, D), its
    penultimate layer) gets them exported as the ONNX graph's `embedding` output.
    """

    modality: str
    """Where the inputs come from (`dataset.modality`): tabular or images."""
    task: str
    """binary or multiclass."""
    input_names: list[str]
    """The encoded input columns, in order."""
    numeric: list[str]
    """The numeric features (the first inputs)."""
    cardinalities: dict[str, int]
    """Categorical feature -> codes, counting 0 for unseen (embedding encoding only)."""
    encoding: str
    """one_hot or embedding."""
    classes: list[str]
    """The output classes in order (empty for binary: one logit, the positive class)."""
    n_outputs: int
    """Logits per row."""
    preprocessing: dict[str, Any] = field(default_factory=dict)
    """The fitted preprocessing (means, standard deviations, categories; image size and fit)."""
    input_shape: list[int] = field(default_factory=list)
    """One input's shape: images (channels, height, width); tables (n_inputs,)."""
    input_mean: list[float] = field(default_factory=list)
    """The statistics the modality fitted on the training split (see `mean`)."""
    input_std: list[float] = field(default_factory=list)
    """See `std`."""

    @property
    def n_inputs(self) -> int:
        """Width of the input tensor."""
        return len(self.input_names)

    @property
    def mean(self) -> np.ndarray:
        """Tables: per-input mean of the training split (0 for category inputs); images: per
        channel. float32."""
        return np.asarray(self.input_mean, dtype=np.float32)

    @property
    def std(self) -> np.ndarray:
        """Tables: per-input standard deviation (1 for category inputs); images: per channel."""
        return np.asarray(self.input_std, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the worker's result and model.pt carry it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of to_dict."""
        return cls(**data)
