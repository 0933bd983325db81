"""Request-log rows as columns: the form the rollout analysis computes on.

A rollout is judged every interval on every row logged since it started: weeks of traffic at a
screening programme's rate are millions of rows, so the analysis works on columns (pandas and
numpy), never row by row. `log_frame` turns the log's JSON records (request_log.py) into them;
a frame already in this form passes through unchanged, so a caller that keeps one and appends
each interval's rows (the decision benchmark) converts each row once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

Key = tuple[str, int]
BASE = (
    "request_id",
    "row",
    "request_key",
    "key",
    "time",
    "model_version",
    "status",
    "latency_ms",
    "decision",
)
"""The columns every frame has; the task's answer fields (`Task.answer_names`) follow."""


def log_frame(records: Iterable[Mapping[str, Any]] | pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """The records as columns: request_id (str), row (int), time (UTC), model_version (str),
    status (int; 200 where not logged), latency_ms, decision and the answer fields (float, NaN
    where a row did not log them)."""
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame.from_records(list(records))
    if is_log_frame(frame, names):
        return frame
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    if not len(frame):
        frame = pd.DataFrame({"request_id": [], "time": []})
    out["request_id"] = frame["request_id"].astype(str).to_numpy()
    out["row"] = _numbers(frame, "row", 0).astype(np.int64)
    out["request_key"] = request_keys(out["request_id"].to_numpy())
    out["key"] = row_keys(out["request_id"].to_numpy(), out["row"].to_numpy())
    out["time"] = pd.DatetimeIndex(pd.to_datetime(frame["time"], utc=True, format="ISO8601")).tz_convert(
        "UTC"
    )
    versions = frame["model_version"].astype(str).to_numpy() if "model_version" in frame else ""
    out["model_version"] = versions
    out["status"] = _numbers(frame, "status", 200).astype(np.int64)
    out["latency_ms"] = _numbers(frame, "latency_ms", np.nan)
    out["decision"] = _numbers(frame, "decision", np.nan)
    for name in names:
        out[name] = _numbers(frame, name, np.nan)
    return out


def request_keys(request_ids: np.ndarray) -> np.ndarray:
    """One 64-bit key per request id: grouping and joining on integers, not on text. A hash: two
    of a billion ids share one with a chance of about 3 in 100 million."""
    return pd.util.hash_array(np.asarray(request_ids, dtype=object)).astype(np.int64)


def row_keys(request_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One 64-bit key per (request id, row)."""
    return request_keys(request_ids) ^ (
        np.asarray(rows, dtype=np.int64) * np.int64(0x9E3779B97F4A7C15 - 2**64)
    )


def is_log_frame(frame: pd.DataFrame, names: tuple[str, ...]) -> bool:
    """Whether a frame is already in log_frame's form."""
    return (
        all(c in frame for c in (*BASE, *names))
        and isinstance(frame["time"].dtype, pd.DatetimeTZDtype)
        and frame["status"].dtype == np.int64
    )


def _numbers(frame: pd.DataFrame, column: str, default: float) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), default, dtype=np.float64)
    return pd.to_numeric(frame[column], errors="coerce").fillna(default).to_numpy(np.float64)


def since(frame: pd.DataFrame, version: str | None, moment: pd.Timestamp) -> pd.DataFrame:
    """The rows of `version` logged at or after `moment`."""
    keep = (frame["model_version"].to_numpy() == str(version)) & (frame["time"] >= moment).to_numpy()
    return frame[keep]


def requests(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per request id: its worst status and its latency (client errors left out: the
    caller's mistake says nothing about a version)."""
    status = frame["status"].to_numpy()
    kept = frame[(status < 400) | (status >= 500)]
    grouped = kept.groupby("request_key", sort=False)
    return pd.DataFrame({"status": grouped["status"].max(), "latency_ms": grouped["latency_ms"].first()})


def answered(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """Rows served with every answer field and a decision."""
    ok = (frame["status"].to_numpy() == 200) & frame["decision"].notna().to_numpy()
    for name in names:
        ok &= frame[name].notna().to_numpy()
    return frame[ok].drop_duplicates("key", keep="last")


def labels_frame(labels: Mapping[Key, int] | pd.DataFrame) -> pd.DataFrame:
    """Labels as columns key (row_keys) and target (the class index, `Task.targets`), from a
    mapping or a frame of request_id, row and target."""
    if isinstance(labels, pd.DataFrame) and "key" in labels:
        return labels[["key", "target"]]
    if isinstance(labels, pd.DataFrame):
        return pd.DataFrame(
            {
                "key": row_keys(labels["request_id"].to_numpy(), labels["row"].to_numpy()),
                "target": labels["target"],
            }
        )
    keys = list(labels)
    ids = np.array([k[0] for k in keys], dtype=object)
    rows = np.array([k[1] for k in keys], dtype=np.int64)
    return pd.DataFrame(
        {"key": row_keys(ids, rows), "target": np.array([labels[k] for k in keys], dtype=np.int64)}
    )


def with_labels(rows: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The rows that have a label, with its `target`."""
    return rows.merge(labels.drop_duplicates("key", keep="last"), on="key", how="inner")
