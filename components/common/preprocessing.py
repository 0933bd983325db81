"""Feature encoding shared by training, evaluation and serving: the exact same transform."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Preprocessing:
    """Numeric columns pass raw (standardised inside the model); categories become one-hot.

    Unseen categories at inference encode as all zeros, which the model has seen as "none of
    the known ones" only through regularisation; the monitor flags them as drift.
    """

    numeric: list[str]
    categorical: dict[str, list[str]]
    mean: list[float]
    std: list[float]

    @property
    def encoded_names(self) -> list[str]:
        """Names of the encoded input columns, in model input order."""
        return self.numeric + [f"{c}={v}" for c, values in self.categorical.items() for v in values]

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: list[str], categorical: list[str]) -> Preprocessing:
        """Learn categories and standardisation statistics from the training split only."""
        numeric = [f for f in features if f not in categorical]
        values = frame[numeric].to_numpy(dtype=np.float64)
        std = values.std(axis=0) if len(values) else np.ones(len(numeric))
        return cls(
            numeric=numeric,
            categorical={c: sorted(map(str, frame[c].dropna().unique())) for c in categorical},
            mean=[float(x) for x in values.mean(axis=0)],
            std=[float(x) if x > 1e-12 else 1.0 for x in std],
        )

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows -> float32 matrix in `encoded_names` order (standardisation happens in the model)."""
        blocks = [frame[self.numeric].to_numpy(dtype=np.float32)]
        for column, values in self.categorical.items():
            col = frame[column].astype(str).to_numpy()
            blocks.append((col[:, None] == np.array(values)[None, :]).astype(np.float32))
        return np.concatenate(blocks, axis=1)

    def scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-input mean and std (one-hot inputs get 0 and 1) for the model's first layer."""
        extra = len(self.encoded_names) - len(self.numeric)
        mean = np.array(self.mean + [0.0] * extra, dtype=np.float32)
        std = np.array(self.std + [1.0] * extra, dtype=np.float32)
        return mean, std

    def to_dict(self) -> dict[str, Any]:
        """JSON form saved next to the model."""
        return {**asdict(self), "encoded_names": self.encoded_names}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Inverse of to_dict."""
        return cls(
            numeric=list(data["numeric"]),
            categorical=dict(data["categorical"]),
            mean=list(data["mean"]),
            std=list(data["std"]),
        )
