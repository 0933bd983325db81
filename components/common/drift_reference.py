"""The drift reference: per-column statistics of the training data, enough to test drift without it.

Written at training time next to the model, it holds per column what Evidently's default
drift tests need, so a window of serving traffic is tested without re-reading the training set:

- counts of non-missing and missing values (Evidently drops NaN and ±inf before testing, and
  picks its test by the reference's non-missing count: at most 1,000 rows, or more);
- value counts when a column has few distinct values (chi-squared, Z-test and Jensen-Shannon
  work on them; categorical columns keep up to MAX_CATEGORIES values);
- for numerical columns, the population standard deviation (it norms the Wasserstein
  distance), min and max, and a quantile sketch of SKETCH_LEVELS points at equal mass;
- every value of a numerical column with at most EXACT_ROWS values, so the K-S test of a
  small reference is exact.

A bounded random sample of rows goes with it (Parquet) for the HTML report.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from components.common.store import Store

SKETCH_LEVELS = 2000
"""Quantile points per numerical column: normed Wasserstein distances within about 0.002 of exact."""
EXACT_ROWS = 1000
"""Evidently tests a reference of at most this many rows differently (K-S, chi-squared, Z)."""
FEW_VALUES = 20
"""A numerical column with at most this many distinct values keeps its value counts."""
MAX_CATEGORIES = 10_000
"""A categorical column keeps the counts of at most this many values (the rest are summed as other)."""
SAMPLE_ROWS = 5000
"""Rows kept for the HTML report."""
OTHER = "__other__"
FEATURE_REFERENCE = "drift_reference.json"
"""A version's reference of its input features (from the training split)."""
SAMPLE_FILE = "drift_sample.parquet"
"""A version's bounded sample of training rows, for the HTML report."""
PREDICTION_REFERENCE = "prediction_reference.json"
"""A version's reference of its answers (probability, decision) on the test split."""
EMBEDDING_REFERENCE = "embedding_reference.npy"
"""An image version's held-out embeddings (float32, rows x D), written by calibrate, compared by
the monitor with the served ones (components/monitor/embedding_drift.py)."""

Kind = Literal["numerical", "categorical"]


@dataclass
class ColumnReference:
    """What one column looked like at training time."""

    name: str
    kind: Kind
    count: int  # non-missing values (for numerical: finite)
    missing: int  # NaN, None and, for numerical, ±inf
    distinct: int  # distinct non-missing values
    values: list[Any] = field(default_factory=list)  # distinct values with counts (few-valued columns)
    value_counts: list[int] = field(default_factory=list)
    std: float = 0.0  # population standard deviation (numerical)
    minimum: float = 0.0
    maximum: float = 0.0
    quantiles: list[float] = field(default_factory=list)  # numerical: SKETCH_LEVELS points at (k + 0.5) / K
    exact: list[float] = field(default_factory=list)  # numerical with count <= EXACT_ROWS: every value

    @property
    def counts(self) -> dict[Any, int]:
        """Value counts as a dict (few-valued and categorical columns)."""
        return dict(zip(self.values, self.value_counts, strict=True))

    @property
    def missing_share(self) -> float:
        """Share of rows with no usable value."""
        total = self.count + self.missing
        return self.missing / total if total else 0.0


@dataclass
class Reference:
    """The drift reference of one model version."""

    rows: int
    columns: list[ColumnReference]
    source: str = ""  # where it was built from (a split, a run)

    def column(self, name: str) -> ColumnReference:
        """One column's reference.

        Raises:
            KeyError: The reference has no such column.
        """
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"the drift reference has no column {name!r}; it has {[c.name for c in self.columns]}")

    def to_json(self) -> str:
        """The reference as JSON (floats round-trip exactly)."""
        return json.dumps(
            {"rows": self.rows, "source": self.source, "columns": [asdict(c) for c in self.columns]}
        )

    @classmethod
    def from_json(cls, text: str) -> Reference:
        """A reference from `to_json`'s output."""
        data = json.loads(text)
        return cls(data["rows"], [ColumnReference(**c) for c in data["columns"]], data.get("source", ""))

    def save(self, store: Store, prefix: str, sample: pd.DataFrame | None = None) -> None:
        """Write `<prefix>/drift_reference.json` (and `drift_sample.parquet`); each write is atomic."""
        store.write_text(f"{prefix}/{FEATURE_REFERENCE}", self.to_json())
        if sample is not None:
            buffer = io.BytesIO()
            sample.to_parquet(buffer, index=False)
            store.write_bytes(f"{prefix}/{SAMPLE_FILE}", buffer.getvalue())

    @classmethod
    def load(cls, store: Store, prefix: str, name: str = FEATURE_REFERENCE) -> Reference:
        """A reference saved under `prefix` (a model version's folder).

        Raises:
            FileNotFoundError: No such file there (a version registered before the monitor
                existed: register it again, or build one with `build_reference`).
        """
        key = f"{prefix}/{name}"
        if not store.exists(key):
            raise FileNotFoundError(
                f"{key} is missing from {store!r}: versions registered before the drift monitor have "
                "none; retrain, or write one with components.common.drift_reference.build_reference"
            )
        return cls.from_json(store.read_text(key))


def usable(series: pd.Series, kind: Kind) -> np.ndarray:
    """The values drift is tested on, as Evidently takes them: NaN and ±inf dropped.

    Numerical values come back as float64, categorical ones as text.
    """
    if kind == "numerical":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return values[np.isfinite(values)]
    kept = series[series.notna()]
    return kept.astype(str).to_numpy(dtype=object)


def build_column(name: str, series: pd.Series, kind: Kind) -> ColumnReference:
    """One column's reference from its training values."""
    values = usable(series, kind)
    column = ColumnReference(
        name=name, kind=kind, count=len(values), missing=len(series) - len(values), distinct=0
    )
    if kind == "categorical":
        counts = pd.Series(values).value_counts()
        column.distinct = len(counts)
        if len(counts) > MAX_CATEGORIES:
            kept = counts.iloc[: MAX_CATEGORIES - 1]
            counts = pd.concat([kept, pd.Series({OTHER: int(counts.iloc[MAX_CATEGORIES - 1 :].sum())})])
        column.values = [str(v) for v in counts.index]
        column.value_counts = [int(c) for c in counts.to_numpy()]
        return column
    if len(values) == 0:
        return column
    ordered = np.sort(values)
    distinct, counts = np.unique(ordered, return_counts=True)
    column.distinct = len(distinct)
    if len(distinct) <= FEW_VALUES:
        column.values = [float(v) for v in distinct]
        column.value_counts = [int(c) for c in counts]
    column.std = float(np.std(ordered))
    column.minimum, column.maximum = float(ordered[0]), float(ordered[-1])
    positions = ((np.arange(SKETCH_LEVELS) + 0.5) * len(ordered) / SKETCH_LEVELS).astype(np.int64)
    column.quantiles = [float(v) for v in ordered[np.minimum(positions, len(ordered) - 1)]]
    if len(ordered) <= EXACT_ROWS:
        column.exact = [float(v) for v in values]
    return column


def build_reference(
    frame: pd.DataFrame, categorical: list[str], columns: list[str] | None = None, source: str = ""
) -> tuple[Reference, pd.DataFrame]:
    """The drift reference of `frame` and its report sample (at most SAMPLE_ROWS rows, seeded).

    Columns not in `categorical` are numerical; a numerical column whose values do not parse
    as numbers is an error, because Evidently would refuse it too.

    Raises:
        ValueError: A named column is missing, or a numerical one holds text.
    """
    names = columns if columns is not None else list(frame.columns)
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the data; it has {list(frame.columns)}")
    built = []
    for name in names:
        kind: Kind = "categorical" if name in categorical else "numerical"
        if kind == "numerical" and not pd.api.types.is_numeric_dtype(frame[name]):
            raise ValueError(
                f"column {name!r} is not numeric (dtype {frame[name].dtype}): list it under the "
                "categorical features, or fix its values"
            )
        built.append(build_column(name, frame[name], kind))
    return Reference(rows=len(frame), columns=built, source=source), sample(frame[names])


def sample(frame: pd.DataFrame, rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """At most `rows` rows of `frame`, seeded (the same data gives the same sample and report)."""
    if len(frame) <= rows:
        return frame.reset_index(drop=True)
    return frame.sample(n=rows, random_state=0).reset_index(drop=True)


EMBEDDING_REFERENCE = "embedding_reference.npy"
"""An image version's held-out embeddings (float32, rows x D), written by calibrate, compared by
the monitor with the served ones (components/monitor/embedding_drift.py)."""
