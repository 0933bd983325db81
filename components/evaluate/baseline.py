"""A simple baseline beside the model: logistic regression on the same split and features.

If the MLP cannot beat a standardised, one-hot logistic regression, the extra machinery is
not paying for itself; the report shows both, and `evaluation.must_beat_baseline` gates on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from components.common.modalities import Inputs, Modality


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A fitted StandardScaler + LogisticRegression and the inputs it was fitted on."""

    modality: Modality
    inputs: Inputs
    model: Any

    @classmethod
    def fit(
        cls,
        modality: Modality,
        inputs: Inputs,
        train: pd.DataFrame,
        y_train: np.ndarray,
        class_weighting: bool,
    ) -> Baseline:
        """Fit on the train split, on the modality's baseline inputs (tables: categories one-hot,
        whatever the model itself uses)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(
            StandardScaler(),
            LogisticRegression(max_iter=2000, class_weight="balanced" if class_weighting else None),
        )
        model.fit(modality.baseline_arrays(inputs, train), y_train)
        return cls(modality, inputs, model)

    def class_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """One probability column per class index (a multinomial fit for more than two classes)."""
        x = self.modality.baseline_arrays(self.inputs, frame)
        return np.asarray(self.model.predict_proba(x), dtype=np.float64)
