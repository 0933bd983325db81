"""The data gate on Great Expectations: schema, types, nulls, ranges, sets, label, duplicates.

Checks are aggregate expectations wherever a row-level map is not needed (column min/max,
distinct-value sets, dtype, means of derived 0/1 columns), so one pass of column metrics
answers them; rows are only sampled afterwards, with pandas, to show failures.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.common.config import ColumnRule, DatasetConfig, ValidationConfig
from components.common.modalities import Modality
from components.common.tasks.base import LABEL_INDICATOR

POSITIVE = LABEL_INDICATOR
DUPLICATE = "__kubeloop_duplicate"
BAD_TIME = "__kubeloop_unparseable_time"
_INTEGERS = [f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)]
_INTEGERS += [f"Int{bits}" for bits in (8, 16, 32, 64)]  # pandas' nullable integers
_FLOATS = ["float16", "float32", "float64", "Float32", "Float64"]
DTYPES = {
    "number": _INTEGERS + _FLOATS,
    "integer": _INTEGERS,
    "string": ["object", "str", "string", "category"],
    "boolean": ["bool", "boolean"],
}


@dataclass(frozen=True)
class CheckResult:
    """One expectation: what was checked, on which column, what was seen against what was wanted."""

    check: str
    column: str | None
    passed: bool
    observed: str
    expected: str
    severity: str = "error"
    expectation: str = ""

    @property
    def blocking(self) -> bool:
        """A failed error-severity check stops the pipeline."""
        return not self.passed and self.severity == "error"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)


def gate_rules(rules: ValidationConfig, modality: Modality) -> ValidationConfig:
    """The validation rules with the modality's column rules added (the config's win)."""
    added = modality.gate_rules()
    if not added:
        return rules
    return rules.model_copy(update={"columns": {**added, **rules.columns}})


def feature_columns(frame: pd.DataFrame, dataset: DatasetConfig) -> list[str]:
    """Configured features, or every column but label, id, time and group."""
    if dataset.features is not None:
        return list(dataset.features)
    reserved = {dataset.label, dataset.id_column, dataset.time_column, dataset.group_column}
    return [c for c in frame.columns if c not in reserved and not c.startswith("__kubeloop_")]


def required_columns(frame: pd.DataFrame, dataset: DatasetConfig) -> list[str]:
    """Every column the config names (features, label, id, time, group, device), in order."""
    named = [
        *feature_columns(frame, dataset),
        dataset.label,
        dataset.id_column,
        dataset.time_column,
        dataset.group_column,
        dataset.device_column,
    ]
    return list(dict.fromkeys(c for c in named if c))


def check_meta(check: str, column: str | None, expected: str, severity: str) -> dict[str, Any]:
    """Readable identity of a check, carried in the expectation's meta into the results."""
    return {"check": check, "column": column, "expected": expected, "severity": severity}


def _column_rule(name: str, dataset: DatasetConfig, rules: ValidationConfig) -> ColumnRule:
    rule = rules.columns.get(name)
    if rule is not None:
        return rule
    numeric = name != dataset.label and name not in (dataset.categorical or [])
    return ColumnRule(type="number" if numeric else None)


def build_expectations(frame: pd.DataFrame, dataset: DatasetConfig, rules: ValidationConfig) -> list[Any]:
    """The suite for this frame: schema first, then per-column and label checks."""
    import great_expectations.expectations as gxe

    present = set(frame.columns)
    required = required_columns(frame, dataset)
    derived = sorted(c for c in present if c.startswith("__kubeloop_"))  # gate-only columns
    out: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=required + derived,
            exact_match=not rules.allow_extra_columns,
            meta={
                **check_meta(
                    "columns",
                    None,
                    f"{'exactly' if not rules.allow_extra_columns else 'at least'} the {len(required)} "
                    "columns the config names (features, label, id, time, group, device)",
                    "error",
                ),
                "exact": not rules.allow_extra_columns,
            },
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=rules.min_rows,
            max_value=rules.max_rows,
            meta=check_meta(
                "row_count",
                None,
                f">= {rules.min_rows}" + (f" and <= {rules.max_rows}" if rules.max_rows else ""),
                "error",
            ),
        ),
    ]
    features = feature_columns(frame, dataset)
    for name in [c for c in dict.fromkeys([*features, dataset.label, *rules.columns]) if c in present]:
        rule = _column_rule(name, dataset, rules)
        severity = rule.severity
        default = 0.0 if name == dataset.label else rules.max_null_fraction  # a label is never imputed
        max_null = rule.max_null_fraction if rule.max_null_fraction is not None else default
        out.append(
            gxe.ExpectColumnValuesToNotBeNull(
                column=name,
                mostly=1.0 - max_null,
                meta=check_meta("null_fraction", name, f"<= {max_null}", severity),
            )
        )
        if rule.type in DTYPES:
            hint = (
                ""
                if name in rules.columns
                else f" (an undeclared feature is numeric: if '{name}' holds categories, list it in "
                "dataset.categorical; if it is no feature, leave it out of dataset.features)"
            )
            out.append(
                gxe.ExpectColumnValuesToBeInTypeList(
                    column=name,
                    type_list=DTYPES[rule.type],
                    meta=check_meta("dtype", name, f"a {rule.type} dtype{hint}", severity),
                )
            )
        if rule.min is not None:
            out.append(
                gxe.ExpectColumnMinToBeBetween(
                    column=name, min_value=rule.min, meta=check_meta("min", name, f">= {rule.min}", severity)
                )
            )
        if rule.max is not None:
            out.append(
                gxe.ExpectColumnMaxToBeBetween(
                    column=name, max_value=rule.max, meta=check_meta("max", name, f"<= {rule.max}", severity)
                )
            )
        if rule.allowed is not None and rule.allowed_share < 1:
            share = rule.allowed_share
            out.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=name,
                    value_set=rule.allowed,
                    mostly=share,
                    meta=check_meta(
                        "allowed_values", name, f"at least {share:.2%} within {rule.allowed}", severity
                    ),
                )
            )
        elif rule.allowed is not None:
            out.append(
                gxe.ExpectColumnDistinctValuesToBeInSet(
                    column=name,
                    value_set=rule.allowed,
                    meta=check_meta("allowed_values", name, f"within {rule.allowed}", severity),
                )
            )
        if rule.unique:
            out.append(
                gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
                    column=name,
                    min_value=1.0,
                    meta=check_meta("unique", name, "every value distinct", severity),
                )
            )
        if name in features and rules.constant_columns != "ignore":
            # A nonzero spread says "not constant" without counting distinct values.
            numeric = pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(
                frame[name]
            )
            constant_check = (
                gxe.ExpectColumnStdevToBeBetween(
                    column=name,
                    min_value=0,
                    strict_min=True,
                    meta=check_meta("not_constant", name, "a spread above 0", rules.constant_columns),
                )
                if numeric
                else gxe.ExpectColumnUniqueValueCountToBeBetween(
                    column=name,
                    min_value=2,
                    meta=check_meta("not_constant", name, ">= 2 distinct values", rules.constant_columns),
                )
            )
            out.append(constant_check)
    if dataset.label in present:
        out += dataset.make_task().label_expectations(rules.prevalence, check_meta)
    if DUPLICATE in present and rules.max_duplicate_fraction is not None:
        out.append(
            gxe.ExpectColumnMeanToBeBetween(
                column=DUPLICATE,
                max_value=rules.max_duplicate_fraction,
                meta=check_meta("duplicate_fraction", None, f"<= {rules.max_duplicate_fraction}", "error"),
            )
        )
    if BAD_TIME in present:
        out.append(
            gxe.ExpectColumnSumToBeBetween(
                column=BAD_TIME,
                max_value=0,
                meta=check_meta("timestamps_parse", dataset.time_column, "every value a timestamp", "error"),
            )
        )
    return out


def with_derived_columns(
    frame: pd.DataFrame, dataset: DatasetConfig, rules: ValidationConfig
) -> pd.DataFrame:
    """The frame plus 0/1 columns that turn label, duplicate and time checks into column means."""
    extra: dict[str, Any] = {}
    if dataset.label in frame.columns:
        extra.update(dataset.make_task().gate_columns(frame[dataset.label]))
    if rules.max_duplicate_fraction is not None:
        subset = [c for c in frame.columns if c != dataset.id_column]
        extra[DUPLICATE] = frame.duplicated(subset=subset).to_numpy(dtype=np.int8)
    if dataset.time_column and dataset.time_column in frame.columns:
        raw = frame[dataset.time_column]
        parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
        extra[BAD_TIME] = (raw.notna() & parsed.isna()).to_numpy(dtype=np.int8)
    return frame.assign(**extra)


def _observed(check: str, result: dict[str, Any], meta: dict[str, Any]) -> str:
    if check in ("null_fraction", "profile_nulls"):
        return f"{(result.get('unexpected_percent') or 0.0) / 100:.4f}"
    if check == "columns":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        shown = ("missing", "unexpected") if meta.get("exact") else ("missing",)
        parts = [f"{k}: {mismatched[k]}" for k in shown if mismatched.get(k)]
        return "; ".join(parts) or "as expected"
    counts = result.get("partial_unexpected_counts")
    if check == "label_classes" and counts:
        return "; ".join(f"{c['value']!r} in {c['count']} rows" for c in counts[:10])
    value = result.get("observed_value")
    if isinstance(value, dict) and "quantiles" in value:
        return ", ".join(
            f"{q:.1%}: {v:.4g}" for q, v in zip(value["quantiles"], value["values"], strict=False)
        )
    if value is None and "partial_unexpected_list" in result:
        if not result["partial_unexpected_list"] and not result.get("unexpected_percent"):
            return "none unexpected"
        examples = list(dict.fromkeys(map(str, result["partial_unexpected_list"])))[:5]
        share = result.get("unexpected_percent")
        prefix = f"{share:.2f}% unexpected" if share is not None else "unexpected"
        return f"{prefix}, e.g. {examples}"
    if isinstance(value, float | np.floating):
        return f"{float(value):.4g}"
    return str(value)


def _to_check(outcome: Any) -> CheckResult:
    config = outcome.expectation_config
    meta = config.meta or {}
    check = meta.get("check", config.type)
    if outcome.exception_info and outcome.exception_info.get("raised_exception"):
        observed = f"error: {outcome.exception_info.get('exception_message')}"
    else:
        observed = _observed(check, outcome.result or {}, meta)
    return CheckResult(
        check=check,
        column=meta.get("column"),
        passed=bool(outcome.success),
        observed=observed,
        expected=meta.get("expected", ""),
        severity=meta.get("severity", "error"),
        expectation=config.type,
    )


def class_balance(frame: pd.DataFrame, dataset: DatasetConfig, rules: ValidationConfig) -> list[CheckResult]:
    """Each label value's share of the rows against `validation.min_class_share`."""
    if rules.min_class_share is None or dataset.label not in frame.columns:
        return []
    counts = frame[dataset.label].dropna().astype(str).value_counts()
    rare = counts[counts < rules.min_class_share * max(int(counts.sum()), 1)]
    smallest = counts.index[-1] if len(counts) else None
    observed = (
        "; ".join(f"{v!r}: {n} rows ({n / counts.sum():.2%})" for v, n in rare.items())
        if len(rare)
        else f"smallest {smallest!r}: {counts.iloc[-1] / counts.sum():.2%}"
        if smallest is not None
        else "no labels"
    )
    return [
        CheckResult(
            check="class_balance",
            column=dataset.label,
            passed=rare.empty,
            observed=observed,
            expected=f"every label value >= {rules.min_class_share:.2%} of the rows",
            severity="error",
            expectation="kubeloop.class_balance",
        )
    ]


def validate_frame(
    frame: pd.DataFrame,
    dataset: DatasetConfig,
    rules: ValidationConfig,
    profile: dict[str, Any] | None = None,
) -> tuple[list[CheckResult], Any]:
    """Run the suite with Great Expectations; returns kubeloop's check list and GE's result."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from components.validate_data import ge_speedups

    ge_speedups.install()
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    prepared = with_derived_columns(frame, dataset, rules)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (
        context.data_sources.add_pandas("kubeloop")
        .add_dataframe_asset("dataset")
        .add_batch_definition_whole_dataframe("whole")
    )
    expectations = build_expectations(prepared, dataset, rules)
    if profile is not None:
        from components.validate_data.profile import profile_expectations

        expectations += profile_expectations(profile, set(prepared.columns), dataset, rules.profile, POSITIVE)
    # The whole list at construction: suite.add_expectation on a stored suite re-serialises the
    # suite each time (quadratic; 18 of 21 s for 170 checks). Equal checks are kept, each
    # reported under its own name.
    suite = context.suites.add(gx.ExpectationSuite(name="kubeloop-data-gate", expectations=expectations))
    # Batch.validate keeps the result in memory; ValidationDefinition.run also stores it, and
    # GE 1.24's store cannot serialise the numpy booleans of quantile results.
    batch = batch_definition.get_batch(batch_parameters={"dataframe": prepared})
    result = batch.validate(suite, result_format="SUMMARY")
    checks = [_to_check(outcome) for outcome in result.results]
    if profile is not None and rules.profile.column_order != "ignore":
        from components.validate_data.profile import column_order_check

        checks.append(column_order_check(list(frame.columns), profile, rules.profile.column_order))
    return checks, result


def run_checks(frame: pd.DataFrame, dataset: DatasetConfig, rules: ValidationConfig) -> list[CheckResult]:
    """Every check, passed or not (see validate_frame for GE's own result)."""
    return validate_frame(frame, dataset, rules)[0]
