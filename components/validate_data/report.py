"""What a person reads about a validation: the Markdown summary, GE's data docs, bad rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from components.common.config import ValidationConfig
from components.validate_data.checks import CheckResult


def render_report(
    path: str,
    rows: int,
    results: list[CheckResult],
    sample: pd.DataFrame,
    reference: str | None = None,
    inferred: list[str] | None = None,
    devices: str = "",
) -> str:
    """Markdown summary: verdict, what was inferred of the columns, failures first (errors,
    then warnings), then offending rows and the per-device table."""
    blocking = [r for r in results if r.blocking]
    warned = [r for r in results if not r.passed and not r.blocking]
    verdict = "FAILED" if blocking else "passed"
    lines = [
        f"# Data validation: {verdict}",
        "",
        f"Dataset `{path}`: {rows} rows, {len(results)} checks, {len(blocking)} failed, "
        f"{len(warned)} warning(s).",
        "",
        f"Reference profile: {reference or 'none (first model, or validation.profile disabled)'}.",
        "",
    ]
    if inferred:
        lines += ["Inferred from the data (the config did not say):", ""]
        lines += [f"- {decision}" for decision in inferred]
        lines.append("")
    lines += [
        "| check | column | observed | expected | result |",
        "|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r.passed, not r.blocking)):
        mark = "pass" if r.passed else ("**FAIL** (error)" if r.blocking else "warning")
        lines.append(f"| {r.check} | {r.column or ''} | {r.observed} | {r.expected} | {mark} |")
    if not sample.empty:
        lines += ["", "## Sample of failing rows", "", sample.to_markdown(index=False)]
    if devices:
        lines += ["", "## Devices", "", devices]
    return "\n".join(lines) + "\n"


def data_docs_html(result: Any) -> str:
    """Great Expectations' validation-result page (data docs) for the run."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    # GE 1.24's renderer parses repr() of numbers, which numpy 2 scalars break
    # ("np.float64(40.0)"); hand it plain Python numbers.
    for outcome in result.results:
        if outcome.result:
            outcome.result = {k: _plain(v) for k, v in outcome.result.items()}
    return str(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result)))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def failing_mask(frame: pd.DataFrame, result: CheckResult, rules: ValidationConfig) -> pd.Series:
    """The rows that break a failed null, range or set check on a column (none for others)."""
    mask = pd.Series(False, index=frame.index)
    if result.passed or result.column is None or result.column not in frame.columns:
        return mask
    column = frame[result.column]
    rule = rules.columns.get(result.column)
    if result.check == "null_fraction":
        return column.isna()
    if result.check == "min" and rule is not None and rule.min is not None:
        return pd.to_numeric(column, errors="coerce") < rule.min
    if result.check == "max" and rule is not None and rule.max is not None:
        return pd.to_numeric(column, errors="coerce") > rule.max
    if result.check == "allowed_values" and rule is not None and rule.allowed is not None:
        return column.notna() & ~column.isin(rule.allowed)
    return mask


def bad_row_sample(
    frame: pd.DataFrame, results: list[CheckResult], rules: ValidationConfig, limit: int = 5
) -> pd.DataFrame:
    """A few rows (at most `limit` per check) that break a failed null, range or set check,
    to show in the report: every failed check has its examples, however many rows fail another."""
    mask = pd.Series(False, index=frame.index)
    for r in results:
        failing = failing_mask(frame, r, rules)
        mask[failing[failing].index[:limit]] = True
    return frame[mask]
