"""Reference profiles: what trusted data looked like, and the expectations new data must meet.

A profile is written for the training split of every run and registered next to the model
(`data_profile.json`, plus the derived Great Expectations suite as
`expectation_suite.json`), so the next run validates new data against the data its
champion was trained on.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from components.common.config import DatasetConfig, ProfileTolerances
from components.common.tasks.base import LABEL_INDICATOR

MAX_CATEGORIES = 200
"""Columns with more distinct values than this are not profiled as category sets."""
PROFILE_VERSION = 1
TAILS = (0.01, 0.99)
"""Quantiles that bound the range check: robust where min/max of a long tail wobbles."""


def dtype_family(series: pd.Series) -> str:
    """boolean, integer, number or string: the type a column rule and the profile name."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    return "string"


def build_profile(
    frame: pd.DataFrame,
    dataset: DatasetConfig,
    features: list[str],
    source: str,
    devices: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per-column dtype family, null share, range and (for few values) the category set; and
    the per-device summary (`devices.device_summary`) when there is one."""
    columns: dict[str, dict[str, Any]] = {}
    for name in [*features, dataset.label]:
        series = frame[name]
        family = dtype_family(series)
        entry: dict[str, Any] = {"family": family, "null_fraction": float(series.isna().mean())}
        if family in ("number", "integer") and series.notna().any():
            low, high = series.quantile(list(TAILS)).tolist()
            entry.update(
                min=float(series.min()),
                max=float(series.max()),
                low=float(low),
                high=float(high),
                mean=float(series.mean()),
                std=float(series.std(ddof=0)),
            )
        if family in ("string", "boolean") or name in (dataset.categorical or []):
            values = series.dropna().unique()
            if len(values) <= MAX_CATEGORIES:
                entry["categories"] = sorted(map(str, values))
        columns[name] = entry
    return {
        "version": PROFILE_VERSION,
        "source": source,
        "rows": len(frame),
        "prevalence": _prevalence(frame, dataset),
        "columns": columns,
        # Stores write JSON with sorted keys, so the column order needs its own list: the
        # table's (an image's properties come after the manifest's label).
        "order": [c for c in frame.columns if c in columns],
        "devices": devices or {},
    }


def profile_expectations(
    profile: dict[str, Any],
    present: set[str],
    dataset: DatasetConfig,
    tol: ProfileTolerances,
    positive_column: str,
) -> list[Any]:
    """Expectations that new data stays close to the profile (all aggregate, none row-level)."""
    import great_expectations.expectations as gxe

    from components.validate_data.checks import DTYPES, check_meta

    source = profile.get("source", "reference")
    columns = profile["columns"]
    out: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=sorted(columns),
            exact_match=False,
            meta={
                **check_meta("profile_columns", None, f"every column of {source}", tol.severity),
                "exact": False,
            },
        )
    ]
    for name, ref in columns.items():
        if name not in present:
            continue
        allowed_nulls = min(1.0, ref["null_fraction"] + tol.null_increase)
        out.append(
            gxe.ExpectColumnValuesToNotBeNull(
                column=name,
                mostly=1.0 - allowed_nulls,
                meta=check_meta(
                    "profile_nulls",
                    name,
                    f"<= {allowed_nulls:.4f} ({source}: {ref['null_fraction']:.4f})",
                    tol.severity,
                ),
            )
        )
        family = "number" if ref["family"] == "integer" else ref["family"]
        if family in DTYPES:
            out.append(
                gxe.ExpectColumnValuesToBeInTypeList(
                    column=name,
                    type_list=DTYPES[family],
                    meta=check_meta("profile_dtype", name, f"a {family} dtype like {source}", tol.severity),
                )
            )
        if "low" in ref and name != dataset.label:
            out.append(_range_expectation(name, ref, tol, source))
        if "categories" in ref and name != dataset.label:
            out.append(
                gxe.ExpectColumnDistinctValuesToBeInSet(
                    column=name,
                    value_set=_typed_categories(ref["categories"], ref["family"]),
                    meta=check_meta(
                        "unseen_categories",
                        name,
                        f"within {source}'s {ref['categories'][:10]}",
                        tol.unseen_categories,
                    ),
                )
            )
    reference = profile.get("prevalence")
    if reference is not None and 0 < reference < 1:
        low, high = reference / tol.prevalence_factor, min(1.0, reference * tol.prevalence_factor)
        out.append(
            gxe.ExpectColumnMeanToBeBetween(
                column=positive_column,
                min_value=low,
                max_value=high,
                meta=check_meta(
                    "profile_prevalence",
                    dataset.label,
                    f"between {low:.4f} and {high:.4f} ({source}: {reference:.4f})",
                    tol.severity,
                ),
            )
        )
    return out


def _range_expectation(name: str, ref: dict[str, Any], tol: ProfileTolerances, source: str) -> Any:
    """The batch's 1% and 99% quantiles each within a band around the reference's.

    The band is `range_margin` x the reference's 1-99% width (at least 1 for integers,
    whose quantiles move in whole steps); a shifted or stretched distribution moves a tail.
    """
    import great_expectations.expectations as gxe

    from components.validate_data.checks import check_meta

    band = tol.range_margin * (ref["high"] - ref["low"])
    if ref["family"] == "integer":
        band = max(band, 1.0)
    ranges = [[ref["low"] - band, ref["low"] + band], [ref["high"] - band, ref["high"] + band]]
    expected = f"1%/99% quantiles within ±{band:.4g} of {source}'s [{ref['low']:.4g}, {ref['high']:.4g}]"
    return gxe.ExpectColumnQuantileValuesToBeBetween(
        column=name,
        quantile_ranges={"quantiles": list(TAILS), "value_ranges": ranges},
        meta=check_meta("profile_range", name, expected, tol.range_severity),
    )


def column_order_check(columns: list[str], profile: dict[str, Any], severity: str) -> Any:
    """Whether the reference's columns arrive in the reference's relative order."""
    from components.validate_data.checks import CheckResult

    order = profile.get("order")
    if order is None:  # a profile from before the order was recorded: nothing to compare with
        order = [c for c in columns if c in profile["columns"]]
    reference = [c for c in order if c in columns]
    arrived = [c for c in columns if c in order]
    moved = [a for a, b in zip(arrived, reference, strict=True) if a != b]
    return CheckResult(
        check="column_order",
        column=None,
        passed=not moved,
        observed=f"moved: {moved[:8]}" if moved else "same order",
        expected=f"the order of {profile.get('source', 'the reference')}",
        severity=severity,
        expectation="kubeloop.column_order",
    )


def _typed_categories(values: list[str], family: str) -> list[Any]:
    """Categories are stored as text; compare numbers as numbers."""
    if family in ("number", "integer"):
        return [float(v) if "." in v else int(v) for v in values]
    if family == "boolean":
        return [v == "True" for v in values]
    return list(values)


def suite_json(expectations: list[Any], name: str) -> dict[str, Any]:
    """The expectations as a Great Expectations suite document (loadable by GE)."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    return dict(suite.to_json_dict())


def _prevalence(frame: pd.DataFrame, dataset: DatasetConfig) -> float | None:
    """Share of the class of interest; None when the task has none (multi-class, unset)."""
    indicator = dataset.make_task().gate_columns(frame[dataset.label]).get(LABEL_INDICATOR)
    return None if indicator is None else float(indicator.mean())
