"""A semantics-preserving speed-up for Great Expectations 1.24's pandas column metrics.

GE's column mean, sum and stdev metrics first ask whether the column holds any
`decimal.Decimal` by calling `isinstance` on every element in Python: 1,000,000 calls per
column, about 70% of the gate's time on a 1M x 20 table. A Decimal can only live in an
object-dtype array, so a numeric dtype answers the question at once; object arrays still
get GE's own element scan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_INSTALLED = "_kubeloop_fast_decimal_check"


def install() -> None:
    """Replace GE's decimal scan with a dtype-aware one (idempotent)."""
    import great_expectations.util as ge_util

    original = ge_util.does_ndarray_contain_decimal_dtype
    if getattr(original, _INSTALLED, False):
        return

    def does_ndarray_contain_decimal_dtype(data: Any) -> bool:
        if isinstance(data, np.ndarray) and data.dtype != object:
            return False
        return bool(original(data))

    setattr(does_ndarray_contain_decimal_dtype, _INSTALLED, True)
    ge_util.does_ndarray_contain_decimal_dtype = does_ndarray_contain_decimal_dtype  # type: ignore[assignment]
