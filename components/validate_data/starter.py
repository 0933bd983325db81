"""`kubeloop init`: a starter config profiled from a team's own table or image manifest.

Every value the starter writes is inferred from the data, and the comment beside it says from
what, so a person can check each one before the first `kubeloop run`. The column rules are the
data's profile with a margin: the first run passes them, and a later file that breaks one is
stopped at the gate with the rule named.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from components.common.commented_yaml import Entry, plain, render
from components.common.config import DatasetConfig
from components.common.modalities import modality_of_table
from components.common.tasks.starter import task_entries
from components.validate_data.infer import infer_columns, looks_like_dates, looks_like_id
from components.validate_data.profile import dtype_family

LABEL_NAMES = ("label", "target", "y", "class", "outcome", "diagnosis", "churned", "churn")
"""Column names taken as the label when `--label` is not given (case-insensitive)."""
GROUP_NAME = re.compile(r"(patient|subject|participant|site|hospital|household|customer|account|user)", re.I)
"""A column named like this that repeats is a guess for dataset.group_column."""
DEVICE_NAME = re.compile(r"(scanner|device|manufacturer|vendor|machine|camera|modality)", re.I)
"""A column named like this is a guess for dataset.device_column."""
MAX_ALLOWED = 30
"""A category column with at most this many values gets an allowed set."""
RANGE_MARGIN = 0.1
"""Numeric ranges are widened by this share of the observed range on each side."""


class InitError(ValueError):
    """The data cannot seed a config; the message says what to pass or fix."""


def guess_label(frame: pd.DataFrame) -> str:
    """The label column by its name; an error naming the columns when none is recognised."""
    lowered = {str(c).lower(): str(c) for c in frame.columns}
    for name in LABEL_NAMES:
        if name in lowered:
            return lowered[name]
    raise InitError(
        f"no column is named like a label ({', '.join(LABEL_NAMES)}); pass --label with one of: "
        + ", ".join(map(str, frame.columns[:20]))
    )


def _label_entries(frame: pd.DataFrame, label: str) -> list[Entry]:
    try:
        return [Entry("label", label), *task_entries(frame[label])]
    except ValueError as exc:
        raise InitError(f"label '{label}' {exc}") from None


def _roles(frame: pd.DataFrame, label: str, inputs: list[str]) -> dict[str, tuple[str, str]]:
    """id, time, group and device column guesses: role -> (column, why)."""
    roles: dict[str, tuple[str, str]] = {}
    for name in frame.columns:
        if name == label or name in inputs:
            continue
        column, text = frame[name], str(name)
        if "time" not in roles and looks_like_dates(column):
            roles["time"] = (text, "ISO dates")
        elif "id" not in roles and looks_like_id(column):
            roles["id"] = (text, "a different value in every row")
        elif "group" not in roles and GROUP_NAME.search(text) and 4 <= column.nunique() < len(frame):
            roles["group"] = (text, f"named like a group, {column.nunique()} values that repeat")
        elif "device" not in roles and DEVICE_NAME.search(text) and column.nunique() <= MAX_ALLOWED:
            roles["device"] = (text, f"named like a device, {column.nunique()} values")
    return roles


def _split(frame: pd.DataFrame, roles: dict[str, tuple[str, str]]) -> Entry:
    if "group" in roles:
        strategy, why = "group", f"whole {roles['group'][0]} values per split: none on both sides"
    elif "time" in roles and _all_iso(frame[roles["time"][0]]):
        strategy, why = "temporal", f"evaluate on the latest rows by {roles['time'][0]}, as it will be used"
    else:
        strategy, why = "random", "stratified by the label"
    children = [
        Entry("strategy", strategy, why),
        Entry("test_fraction", 0.2),
        Entry("validation_fraction", 0.15),
        Entry("calibration_fraction", 0.15),
        Entry("seed", 0),
    ]
    return Entry("split", None, children=children)


def _all_iso(values: pd.Series) -> bool:
    if values.isna().any():
        return False
    try:
        pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return False
    return True


def _margin(low: float, high: float, integer: bool) -> tuple[float, float] | tuple[int, int]:
    width = (high - low) or abs(high) or 1.0
    lo, hi = low - RANGE_MARGIN * width, high + RANGE_MARGIN * width
    if low >= 0:
        lo = max(lo, 0.0)  # counts, ages and amounts stay non-negative
    if integer:
        return math.floor(lo), math.ceil(hi)
    digits = max(0, 3 - int(math.floor(math.log10(width))))
    return round(math.floor(lo * 10**digits) / 10**digits, digits), round(
        math.ceil(hi * 10**digits) / 10**digits, digits
    )


def _null_limit(share: float) -> float:
    """Room above the observed missing share (a feature complete here may get a few gaps)."""
    return min(1.0, math.ceil((share * 1.5 + 0.02) * 100) / 100)


def _column_rule(column: pd.Series, categorical: bool) -> Entry:
    name = str(column.name)
    family = dtype_family(column)
    rule: dict[str, Any] = {"type": family}
    notes = [family]
    present = column.dropna()
    if family in ("integer", "number") and len(present) and not categorical:
        low, high = float(present.min()), float(present.max())
        whole = family == "integer" or bool((present % 1 == 0).all())  # integers read as floats by a gap
        rule["min"], rule["max"] = _margin(low, high, whole)
        notes.append(f"seen {plain(present.min())} to {plain(present.max())}")
    values = present.unique()
    if categorical and len(values) <= MAX_ALLOWED:
        rule["allowed"] = sorted((plain(v) for v in values), key=str)
        rule["severity"] = "warning"  # a new category is reported; the run goes on
        notes.append(f"{len(values)} values; a new one warns")
    share = float(column.isna().mean())
    rule["max_null_fraction"] = _null_limit(share)
    notes.append(f"{share:.1%} missing")
    return Entry(name, rule, ", ".join(notes))


def starter_config(frame: pd.DataFrame, data: str, label: str | None, out: Path) -> str:
    """The commented YAML of a starter config for `frame` (read from `data`), to be written at `out`."""
    if frame.empty:
        raise InitError(f"{data}: no rows; a config is inferred from the data")
    given = label is not None
    label = label if label is not None else guess_label(frame)
    if label not in frame.columns:
        raise InitError(
            f"--label {label!r} is not a column; the columns are: {', '.join(map(str, frame.columns))}"
        )
    modality, inputs = modality_of_table(frame)
    roles = _roles(frame, label, inputs)

    def column_for(role: str) -> str | None:
        return roles[role][0] if role in roles else None

    name = re.sub(r"[^a-z0-9-]+", "-", Path(data.rstrip("/")).stem.lower()).strip("-")[:63] or "model"
    location = data if "://" in data else os.path.relpath(Path(data).resolve(), out.parent.resolve())
    dataset = [Entry("path", location, "relative to this file" if "://" not in data else "")]
    label_entries = _label_entries(frame, label)
    label_entries[0].why = "given (--label)" if given else "named like a label"
    dataset += label_entries
    for role, key in (
        ("id", "id_column"),
        ("time", "time_column"),
        ("group", "group_column"),
        ("device", "device_column"),
    ):
        if role in roles:
            dataset.append(Entry(key, roles[role][0], roles[role][1]))
    rules: list[Entry] = []
    decisions: list[str] = []
    try:
        starter = modality.starter(frame, inputs, data, column_for("device"))
    except ValueError as exc:
        raise InitError(f"{data}: {exc}") from None
    dataset += starter.entries
    decisions += [f"unreadable: {p}" for p in starter.problems[:5]]
    if starter.infers_features:
        inferred = infer_columns(
            frame,
            DatasetConfig(
                path=location,
                label=label,
                id_column=column_for("id"),
                time_column=column_for("time"),
                group_column=column_for("group"),
            ),
        )
        features = inferred.dataset.features or []
        categorical = inferred.dataset.categorical or []
        if not features:
            raise InitError(f"{data}: no feature columns are left once the label, id and dates are set aside")
        dataset += [
            Entry("features", features, f"{len(features)} columns: the rest of the table"),
            Entry("categorical", categorical, "text, yes/no and integer codes (at most 10 values)"),
        ]
        decisions += inferred.decisions
        rules = [_column_rule(frame[f], f in categorical) for f in features]
    if "id" in roles:
        rules.append(Entry(roles["id"][0], {"unique": True}, "an id: a repeat is a duplicate row"))
    labels = sorted((plain(v) for v in frame[label].unique()), key=str)
    rules.append(
        Entry(label, {"allowed": labels, "max_null_fraction": 0.0}, "the label values seen; never missing")
    )
    dataset.append(_split(frame, roles))
    min_rows = max(1, min(len(frame), max(100, len(frame) // 2)))
    validation = [
        Entry("min_rows", min_rows, f"half of the {len(frame):,} rows seen (at least 100)"),
        Entry("columns", None, "declared rules from the profile, with a margin", rules),
    ]
    header = [
        f"Written by `kubeloop init --data {data}{f' --label {label}' if given else ''}` from "
        f"{len(frame):,} rows x {frame.shape[1]} columns.",
        "Each value was inferred from the data; the comment beside it says from what. Check them, then:",
        f"  kubeloop run --config {out}",
        "Settings left out take their defaults (the config reference lists them all).",
        *([""] + ["Inferred columns:"] + [f"  {d}" for d in decisions] if decisions else []),
        "",
    ]
    body = [
        Entry("name", name, "from the file name; lowercase letters, digits and '-'"),
        Entry("dataset", None, children=dataset),
        Entry("validation", None, children=validation),
    ]
    return render(body, header) + "\n"
