"""A simple baseline beside the model: logistic regression on the same split and features.

If the MLP cannot beat a standardised, one-hot logistic regression, the extra machinery is
not paying for itself; the report shows both, and `evaluation.must_beat_baseline` gates on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from components.common.preprocessing import Preprocessing


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A fitted StandardScaler + LogisticRegression and the encoding it was fitted on."""

    prep: Preprocessing
    model: Any

    @classmethod
    def fit(
        cls, prep: Preprocessing, train: pd.DataFrame, y_train: np.ndarray, class_weighting: bool
    ) -> Baseline:
        """Fit on the train split; categories one-hot, whatever the model itself uses."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        one_hot = dataclasses.replace(prep, encoding="one_hot")  # codes mean nothing to a linear model
        model = make_pipeline(
            StandardScaler(),
            LogisticRegression(max_iter=2000, class_weight="balanced" if class_weighting else None),
        )
        model.fit(one_hot.encode(train), y_train)
        return cls(one_hot, model)

    def class_probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """One probability column per class index (a multinomial fit for more than two classes)."""
        return np.asarray(self.model.predict_proba(self.prep.encode(frame)), dtype=np.float64)
