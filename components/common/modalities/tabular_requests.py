"""Tabular serving: a Seldon request payload into checked feature rows, or a 400 saying what is wrong.

Two payload shapes are accepted (the Seldon protocol's `data` and `jsonData`):

- `{"data": {"names": [...], "ndarray": [[...], ...]}}`: one row per inner list; `names`
  may reorder the columns, and without it the columns follow the model's feature order;
- `{"jsonData": {"instances": [{"age": 61, "scanner": "A", ...}, ...]}}` or a single
  `{"jsonData": {"age": 61, ...}}`: named features per row.

Every check names the feature, the row and the fix, and runs before the model sees a value,
so bad input never reaches onnxruntime (where it would become a 500).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.common.artifacts import DatasetSchema
from components.common.modalities.base import MAX_ROWS, BadInput


class BadRequest(BadInput):
    """The request cannot be scored; the message says what to change."""


@dataclass(frozen=True)
class FeatureSchema:
    """What a request must carry: every feature, in order, and which ones are categories."""

    features: list[str]
    categorical: frozenset[str]
    nullable: frozenset[str] = frozenset()
    """Features that may be missing (null): the version imputes them as training did."""

    @classmethod
    def from_schema(cls, schema: DatasetSchema, imputed: frozenset[str] = frozenset()) -> FeatureSchema:
        """From a version's dataset schema; `imputed`: the numeric features it fills when missing.

        A version that imputes numbers also takes a missing category (as its "(missing)"
        category); one saved before imputation existed takes neither.
        """
        categorical = frozenset(schema.categorical)
        return cls(list(schema.features), categorical, imputed | (categorical if imputed else frozenset()))


class Rows(Mapping[str, list[Any]]):
    """Checked request rows: feature -> one converted value per row, in the model's order.

    Plain lists rather than a DataFrame: building a frame costs more than scoring a row.
    """

    def __init__(self, columns: dict[str, list[Any]]) -> None:
        self._columns = columns

    def __getitem__(self, feature: str) -> list[Any]:
        return self._columns[feature]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    @property
    def n_rows(self) -> int:
        """How many rows."""
        return len(next(iter(self._columns.values()), []))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, features), as a frame would say."""
        return self.n_rows, len(self._columns)

    def rows(self) -> list[tuple[Any, ...]]:
        """The values of each row, in feature order."""
        return list(zip(*self._columns.values(), strict=True))

    def records(self) -> list[dict[str, Any]]:
        """One {feature: value} per row."""
        names = list(self._columns)
        return [dict(zip(names, values, strict=True)) for values in self.rows()]


def _records(payload: Any, schema: FeatureSchema) -> list[Mapping[str, Any]]:
    """jsonData: a list of named rows."""
    rows = payload.get("instances", payload) if isinstance(payload, Mapping) else payload
    if isinstance(rows, Mapping):
        rows = [rows]
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise BadRequest(
            'jsonData must be {"instances": [{feature: value, ...}, ...]} or one {feature: value} object'
        )
    expected = set(schema.features)
    for index, row in enumerate(rows):
        missing, unknown = sorted(expected - set(row)), sorted(set(row) - expected)
        if missing or unknown:
            detail = "; ".join(
                part
                for part in (
                    f"missing {missing}" if missing else "",
                    f"unknown {unknown}" if unknown else "",
                )
                if part
            )
            raise BadRequest(f"row {index}: {detail}; send exactly the features {schema.features}")
    return rows


def _matrix(values: Any, names: Sequence[str] | None, schema: FeatureSchema) -> list[list[Any]]:
    """data.ndarray (with optional data.names): rows of values in the model's feature order."""
    flat = type(values) is list and values and all(type(row) is list for row in values)
    if flat and not any(type(v) in (list, dict) for row in values for v in row):
        table = values  # JSON's rows as sent: no numpy round trip (it would turn numbers into text)
    else:
        array = np.asarray(values, dtype=object)
        if array.size == 0:
            raise BadRequest("the request holds no rows")
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2:
            raise BadRequest(
                f"send rows as data.ndarray (a list of rows, 2 dimensions) or named features as jsonData; "
                f"got {array.ndim} dimensions"
            )
        table = array.tolist()
    columns = list(names) if names else schema.features
    if columns != schema.features:
        if sorted(columns) != sorted(schema.features):
            missing = sorted(set(schema.features) - set(columns))
            unknown = sorted(set(columns) - set(schema.features))
            raise BadRequest(f"names do not match the model's features: missing {missing}, unknown {unknown}")
        if len(set(columns)) != len(columns):
            raise BadRequest(f"names repeat a feature: {columns}")
    width = len(columns)
    for index, row in enumerate(table):
        if len(row) != width:
            raise BadRequest(
                f"row {index}: each row needs {width} values ({', '.join(columns)}), got {len(row)}"
            )
    if columns != schema.features:  # the caller's column order: put them in the model's
        order = [columns.index(feature) for feature in schema.features]
        table = [[row[i] for i in order] for row in table]
    return table


def _number(value: Any, feature: str, row: int) -> float:
    if type(value) is float or type(value) is int:  # JSON's numbers (a bool is neither type)
        number = float(value)
        if math.isfinite(number):
            return number
    elif isinstance(value, bool) or value is None:
        raise BadRequest(f"row {row}: {feature} must be a number, got {value!r}")
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BadRequest(f"row {row}: {feature} must be a number, got {value!r}") from None
        if math.isfinite(number):
            return number
    raise BadRequest(
        f"row {row}: {feature} is {value!r}; the model needs a finite number (send null for a missing value "
        "to a version that imputes it)"
    )


def _category(value: Any, feature: str, row: int) -> str:
    if type(value) is str:
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise BadRequest(f"row {row}: {feature} is missing; send the category as text")
    if isinstance(value, Mapping | list):
        raise BadRequest(f"row {row}: {feature} must be a category (text), got {type(value).__name__}")
    return str(value)


def parse(
    data: Any,
    names: Sequence[str] | None,
    schema: FeatureSchema,
    max_rows: int = MAX_ROWS,
) -> Rows:
    """Checked rows with the model's feature columns.

    Args:
        data: What Seldon hands to predict: the ndarray, or the jsonData object.
        names: `data.names`, when the caller sent them.
        schema: The model's features.
        max_rows: Largest batch accepted.

    Raises:
        BadRequest: With a message naming the problem and the fix.
    """
    if isinstance(data, str | bytes):
        raise BadRequest(
            "this model scores table rows, not text or a file (strData, binData): send rows as "
            '{"data": {"names": [...], "ndarray": [[...], ...]}} or named features as '
            '{"jsonData": {"instances": [{feature: value, ...}, ...]}}'
        )
    is_json = isinstance(data, Mapping) or (
        isinstance(data, list) and len(data) > 0 and isinstance(data[0], Mapping)
    )
    if is_json:
        rows = _records(data, schema)
        table = [[row[feature] for feature in schema.features] for row in rows]
    else:
        table = _matrix(data, names, schema)
    if not table:
        raise BadRequest("the request holds no rows")
    if len(table) > max_rows:
        raise BadRequest(f"{len(table)} rows in one request; the limit is {max_rows}: split the batch")
    columns: dict[str, list[Any]] = {}
    for position, feature in enumerate(schema.features):
        convert = _category if feature in schema.categorical else _number
        if feature in schema.nullable:  # a missing value passes on as None, to be imputed
            columns[feature] = [
                None if _missing(row[position]) else convert(row[position], feature, index)
                for index, row in enumerate(table)
            ]
        else:
            columns[feature] = [convert(row[position], feature, index) for index, row in enumerate(table)]
    return Rows(columns)


def _missing(value: Any) -> bool:
    """null, or a NaN a client sent for one."""
    return value is None or (type(value) is float and math.isnan(value))
