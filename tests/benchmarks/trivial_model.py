"""The baseline of `make bench-serve`: the least a Seldon model class can do (numpy, no checks, no logs)."""

from __future__ import annotations

from typing import Any

import numpy as np


class TrivialModel:
    """Returns the row sums: what the bare seldon-core-microservice costs per request."""

    def predict(self, X: Any, features_names: list[str] | None = None) -> Any:
        return np.asarray(X, dtype=np.float64).sum(axis=1, keepdims=True)
