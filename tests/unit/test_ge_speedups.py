"""The GE speed-up keeps GE's answer: Decimals are still found, numeric arrays skip the scan."""

from __future__ import annotations

import decimal

import numpy as np
import pandas as pd

from components.validate_data import ge_speedups


def test_decimal_detection_is_unchanged_and_numeric_arrays_are_short_circuited() -> None:
    import great_expectations.util as ge_util

    ge_speedups.install()
    ge_speedups.install()  # idempotent
    check = ge_util.does_ndarray_contain_decimal_dtype
    assert check(np.array([1.0, decimal.Decimal("2.5")], dtype=object)) is True
    assert check(np.array([1.0, "x"], dtype=object)) is False
    assert check(np.arange(10, dtype=np.float64)) is False
    series = pd.Series([decimal.Decimal("1.5"), decimal.Decimal("2.5")])
    converted = ge_util.convert_pandas_series_decimal_to_float_dtype(series)
    assert converted is not None and converted.tolist() == [1.5, 2.5]
