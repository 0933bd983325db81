"""Column roles inferred from the data where the config leaves them unsaid, each decision reported.

Only what the config does not say is inferred: listed features stay as listed, and a given
`dataset.categorical` (even []) is taken as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from components.common.config import DatasetConfig

MAX_CODES = 10
"""An integer column with at most this many distinct values reads as codes (a category)."""
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


@dataclass
class Inferred:
    """The dataset settings the gate and training use, and why each inferred one was chosen."""

    dataset: DatasetConfig
    decisions: list[str] = field(default_factory=list)


def is_text(values: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)


def looks_like_dates(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    if not is_text(values):
        return False
    sample = values.dropna().astype(str).head(200)
    return len(sample) > 0 and bool(sample.map(lambda v: bool(ISO_DATE.match(v))).mean() >= 0.9)


def looks_like_id(values: pd.Series) -> bool:
    integer = pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return (is_text(values) or integer) and len(values) > 1 and values.nunique(dropna=False) == len(values)


def infer_columns(frame: pd.DataFrame, dataset: DatasetConfig) -> Inferred:
    """The dataset with `features` and `categorical` filled in from the data where unset."""
    decisions: list[str] = []
    features = dataset.features
    if features is None:
        reserved = {dataset.label, dataset.id_column, dataset.time_column, dataset.group_column}
        features = []
        for name in (c for c in frame.columns if c not in reserved and not str(c).startswith("__kubeloop_")):
            column = frame[name]
            if looks_like_dates(column):
                hint = (
                    "set dataset.time_column to split by it"
                    if not dataset.time_column
                    else "list it to use it"
                )
                decisions.append(f"{name}: dates, left out of the features ({hint})")
            elif looks_like_id(column):
                decisions.append(
                    f"{name}: a different value in every row, left out as a likely id "
                    "(set dataset.id_column, or list it in dataset.features to keep it)"
                )
            else:
                features.append(name)
    categorical = list(dataset.categorical or [])
    if dataset.categorical is None:
        for name in features:
            column = frame[name] if name in frame.columns else pd.Series(dtype=float)
            if is_text(column) or pd.api.types.is_bool_dtype(column):
                categorical.append(name)
                decisions.append(f"{name}: text, a category (declare dataset.categorical to decide yourself)")
            elif pd.api.types.is_integer_dtype(column) and column.nunique() <= MAX_CODES:
                categorical.append(name)
                decisions.append(
                    f"{name}: {column.nunique()} integer codes, a category (declare dataset.categorical "
                    "to keep it a number)"
                )
    update = {"features": list(features), "categorical": categorical}
    return Inferred(dataset.model_copy(update=update), decisions)
