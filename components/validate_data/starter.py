"""`kubeloop init`: a starter config profiled from a team's own table or image manifest.

Every value the starter writes is inferred from the data, and the comment beside it says from
what, so a person can check each one before the first `kubeloop run`. The column rules are the
data's profile with a margin: the first run passes them, and a later file that breaks one is
stopped at the gate with the rule named.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from components.common.config import DatasetConfig
from components.validate_data.infer import MAX_CODES, infer_columns, is_text, looks_like_dates, looks_like_id

LABEL_NAMES = ("label", "target", "y", "class", "outcome", "diagnosis", "churned", "churn")
"""Column names taken as the label when `--label` is not given (case-insensitive)."""
GROUP_NAME = re.compile(r"(patient|subject|participant|site|hospital|household|customer|account|user)", re.I)
"""A column named like this that repeats is a guess for dataset.group_column."""
DEVICE_NAME = re.compile(r"(scanner|device|manufacturer|vendor|machine|camera|modality)", re.I)
"""A column named like this is a guess for dataset.device_column."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
MAX_CLASSES = 50
"""More label values than this read as a number to predict, which kubeloop does not do."""
MAX_ALLOWED = 30
"""A category column with at most this many values gets an allowed set."""
RANGE_MARGIN = 0.1
"""Numeric ranges are widened by this share of the observed range on each side."""
IMAGES_PROBED = 50
"""Image headers read to choose the input size, channels and the gate's bounds."""


class InitError(ValueError):
    """The data cannot seed a config; the message says what to pass or fix."""


@dataclass
class Entry:
    """One YAML key: its value (a section when a list of entries) and why it was chosen."""

    key: str
    value: Any
    why: str = ""
    children: list[Entry] = field(default_factory=list)


def _scalar(value: Any) -> str:
    """A value as YAML flow text ("yes" stays a string, lists stay on one line)."""
    return (
        str(yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False))
        .strip()
        .removesuffix("\n...")
        .removesuffix("...")
        .strip()
    )


def render(entries: list[Entry], header: list[str], indent: int = 0) -> str:
    """The entries as commented YAML."""
    lines = [f"# {line}" if line else "#" for line in header] if indent == 0 else []
    pad = "  " * indent
    for entry in entries:
        if entry.children:
            lines.append(f"{pad}{entry.key}:" + (f"  # {entry.why}" if entry.why else ""))
            lines.append(render(entry.children, [], indent + 1))
        else:
            key = entry.key if entry.key.isidentifier() else _scalar(entry.key)
            text = f"{pad}{key}: {_scalar(entry.value)}"
            lines.append(f"{text.ljust(40)}  # {entry.why}" if entry.why else text)
    return "\n".join(lines)


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
    values = frame[label]
    if values.isna().any():
        missing = int(values.isna().sum())
        raise InitError(
            f"label '{label}' is missing in {missing} of {len(frame)} rows; drop or label those rows first"
        )
    counts = values.value_counts()
    if len(counts) < 2:
        raise InitError(f"label '{label}' has one value ({counts.index[0]!r}); a model needs two or more")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if len(counts) > MAX_CLASSES or (
        numeric and pd.api.types.is_float_dtype(values) and len(counts) > MAX_CODES
    ):
        raise InitError(
            f"label '{label}' has {len(counts)} distinct values, a quantity rather than classes; kubeloop "
            "trains classifiers: bin it into classes, or pass --label with a class column"
        )
    shares = ", ".join(f"{k} {v / len(frame):.1%}" for k, v in counts.sort_index().items())
    entries = [Entry("label", label, "given" if label else "")]
    if len(counts) == 2:
        ordered = sorted(counts.index, key=lambda v: (counts[v], str(v) in ("1", "yes", "true", "True")))
        positive = ordered[0]
        if set(map(str, counts.index)) in ({"0", "1"}, {"False", "True"}, {"no", "yes"}):
            positive = next(v for v in counts.index if str(v) in ("1", "True", "yes"))
        entries += [
            Entry("task", "binary", f"2 label values: {shares}"),
            Entry(
                "positive_value", _plain(positive), "the case to detect; the rarer or the 1/yes/true value"
            ),
        ]
    else:
        classes = [str(v) for v in sorted(counts.index, key=str)]
        entries += [
            Entry("task", "multiclass", f"{len(counts)} label values: {shares}"),
            Entry("classes", classes, "the output order; reorder as you like"),
        ]
    return entries


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value YAML writes plainly."""
    return value.item() if hasattr(value, "item") else value


def _image_column(frame: pd.DataFrame) -> str | None:
    for name in frame.columns:
        column = frame[name]
        if not is_text(column):
            continue
        sample = column.dropna().astype(str).head(200).str.lower()
        if len(sample) and sample.str.endswith(IMAGE_SUFFIXES).mean() >= 0.9:
            return str(name)
    return None


def _roles(frame: pd.DataFrame, label: str, images: str | None) -> dict[str, tuple[str, str]]:
    """id, time, group and device column guesses: role -> (column, why)."""
    roles: dict[str, tuple[str, str]] = {}
    for name in frame.columns:
        if name in (label, images):
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


def _margin(low: float, high: float, integer: bool) -> tuple[float, float]:
    width = (high - low) or abs(high) or 1.0
    lo, hi = low - RANGE_MARGIN * width, high + RANGE_MARGIN * width
    if low >= 0:
        lo = max(lo, 0.0)  # counts, ages and amounts stay non-negative
    if integer:
        return float(math.floor(lo)), float(math.ceil(hi))
    digits = max(0, 3 - int(math.floor(math.log10(width))))
    return round(math.floor(lo * 10**digits) / 10**digits, digits), round(
        math.ceil(hi * 10**digits) / 10**digits, digits
    )


def _null_limit(share: float) -> float:
    """Room above the observed missing share (a feature complete here may get a few gaps)."""
    return min(1.0, math.ceil((share * 1.5 + 0.02) * 100) / 100)


def _column_rule(column: pd.Series, categorical: bool) -> Entry:
    name = str(column.name)
    family = (
        "boolean"
        if pd.api.types.is_bool_dtype(column)
        else (
            "integer"
            if pd.api.types.is_integer_dtype(column)
            else ("number" if pd.api.types.is_numeric_dtype(column) else "string")
        )
    )
    rule: dict[str, Any] = {"type": family}
    notes = [family]
    present = column.dropna()
    if family in ("integer", "number") and len(present) and not categorical:
        low, high = float(present.min()), float(present.max())
        whole = family == "integer" or bool((present % 1 == 0).all())  # integers read as floats by a gap
        rule["min"], rule["max"] = _margin(low, high, whole)
        notes.append(f"seen {_plain(present.min())} to {_plain(present.max())}")
    values = present.unique()
    if categorical and len(values) <= MAX_ALLOWED:
        rule["allowed"] = sorted((_plain(v) for v in values), key=str)
        rule["severity"] = "warning"  # a new category is reported; the run goes on
        notes.append(f"{len(values)} values; a new one warns")
    share = float(column.isna().mean())
    rule["max_null_fraction"] = _null_limit(share)
    notes.append(f"{share:.1%} missing")
    return Entry(name, rule, ", ".join(notes))


def _probed(frame: pd.DataFrame, column: str, device: str | None) -> list[str]:
    """Up to IMAGES_PROBED image paths spread over the manifest, every device's among them."""
    rows = frame[frame[column].notna()]
    if device is not None:
        per_device = max(1, IMAGES_PROBED // max(1, rows[device].nunique()))
        rows = rows.groupby(device, dropna=False).head(per_device)
    step = max(1, len(rows) // IMAGES_PROBED)
    return [str(v) for v in rows[column].iloc[::step].head(IMAGES_PROBED)]


def _image_settings(
    frame: pd.DataFrame, column: str, folder: Path, device: str | None
) -> tuple[Entry, list[str]]:
    from components.common.modalities.image_io import ImageError, read_header
    from components.common.modalities.image_prep import read_location

    headers, problems = [], []
    for location in _probed(frame, column, device):
        path = location if "://" in location or Path(location).is_absolute() else str(folder / location)
        try:
            headers.append(read_header(read_location(path), location))
        except (OSError, ImageError) as exc:
            problems.append(f"{location}: {exc}")
    if not headers:
        raise InitError(
            f"none of the {IMAGES_PROBED} images probed in column '{column}' could be read "
            f"({problems[0] if problems else 'no paths'}); paths are relative to the manifest"
        )
    widths = sorted(h.width for h in headers)
    heights = sorted(h.height for h in headers)
    median_w, median_h = widths[len(widths) // 2], heights[len(heights) // 2]
    scale = min(1.0, 128 / max(median_w, median_h))  # a CPU-sized first model; raise it later
    size = [max(16, int(round(median_h * scale / 8)) * 8), max(16, int(round(median_w * scale / 8)) * 8)]
    channels = 3 if any(h.channels >= 3 for h in headers) else 1
    depths = sorted({h.bit_depth for h in headers})
    formats = sorted({h.format for h in headers})
    spread = f"{min(widths)}-{max(widths)} x {min(heights)}-{max(heights)} px"
    why = f"{len(headers)} headers read: {'/'.join(formats)}, {spread}"
    children = [
        Entry("size", size, f"[height, width]: the median {median_h} x {median_w}, scaled to at most 128"),
        Entry("channels", channels, "colour seen" if channels == 3 else "greyscale"),
        Entry("fit", "letterbox", "keeps each device's aspect ratio"),
        Entry(
            "bounds",
            {
                "bit_depths": depths,
                "min_width": max(8, min(widths) // 2),
                "min_height": max(8, min(heights) // 2),
            },
            "what the sample had; smaller or other depths are refused",
        ),
    ]
    return Entry("image", None, why, children), problems


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
    images = _image_column(frame)
    roles = _roles(frame, label, images)
    name = re.sub(r"[^a-z0-9-]+", "-", Path(data.rstrip("/")).stem.lower()).strip("-")[:63] or "model"
    location = data if "://" in data else _relative(Path(data), out.parent)
    dataset = [Entry("path", location, "relative to this file" if "://" not in data else "")]
    if images:
        dataset += [
            Entry("modality", "images", f"column '{images}' holds image files"),
            Entry("image_column", images),
        ]
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
    if images:
        folder = Path(data).parent if "://" not in data else Path(".")
        settings, problems = _image_settings(frame, images, folder, roles.get("device", (None,))[0])
        dataset.append(settings)
        decisions += [f"unreadable: {p}" for p in problems[:5]]
    else:
        inferred = infer_columns(
            frame,
            DatasetConfig(
                path=location,
                label=label,
                id_column=roles.get("id", ("",))[0] or None,
                time_column=roles.get("time", ("",))[0] or None,
                group_column=roles.get("group", ("",))[0] or None,
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
    labels = sorted((_plain(v) for v in frame[label].unique()), key=str)
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


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        import os

        return os.path.relpath(path.resolve(), folder.resolve())
