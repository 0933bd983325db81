"""Served traffic for the monitor: windows of the request logs, read once each, with labels joined.

The request logs (written by serving) are JSONL files under
`logs/<model>/<predictor>/<folder>/<file>.jsonl`, where the folder is the UTC start of the
hour its rows were served in (`%Y%m%dT%H%M`). A monitor window of any length reads the
folders that can hold its rows and keeps the rows whose `time` falls inside it.

A file that does not parse (a partial upload, a foreign writer, a truncated line) is
reported with the reason and skipped whole: the store writes every file at once, so a bad
one is not worth guessing at. Labels, which arrive later, are read by components.common.labels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json

from components.common.store import Store

FOLDER_FORMAT = "%Y%m%dT%H%M"
FOLDER_MINUTES = 60
"""Serving's log folders each hold one hour (RequestLog's window_minutes default)."""
WINDOW_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, order=True)
class Window:
    """A half-open span of serving time [start, end), UTC."""

    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        """Sortable folder name of the window: its start."""
        return self.start.strftime(WINDOW_FORMAT)

    def __str__(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def parse_time(text: str) -> datetime:
    """A UTC time from ISO 8601 text (naive text is taken as UTC)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def closed_windows(
    first: datetime, watermark: datetime | None, now: datetime, length: int, late: float
) -> list[Window]:
    """Windows not checked yet that have ended at least `late` seconds before `now`.

    Windows are aligned to multiples of `length` seconds since the epoch, so every monitor
    instance cuts the same ones. Checking resumes at the watermark (the end of the last
    window checked); the first check starts at the window holding the oldest logged row.
    """
    step = timedelta(seconds=length)
    if watermark is not None:
        start = watermark
    else:
        seconds = int(first.timestamp()) // length * length
        start = datetime.fromtimestamp(seconds, UTC)
    windows = []
    while start + step + timedelta(seconds=late) <= now:
        windows.append(Window(start, start + step))
        start += step
    return windows


@dataclass
class Traffic:
    """The served rows of a window, and what could not be read."""

    rows: (
        pd.DataFrame
    )  # one row per served row: request_id, row, time, predictor, model_version, probability, ...
    files: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # file key: why it was skipped
    late_rows: int = 0  # rows outside the window found in its folders (other windows count them)


def _folders(store: Store, model: str, predictor: str) -> dict[str, list[str]]:
    """Log files of one predictor by folder name."""
    prefix = f"logs/{model}/{predictor}/"
    by_folder: dict[str, list[str]] = {}
    for key in store.list(prefix.rstrip("/")):
        parts = key[len(prefix) :].split("/")
        if len(parts) == 2 and parts[1].endswith(".jsonl"):
            by_folder.setdefault(parts[0], []).append(key)
    return by_folder


def first_logged(store: Store, model: str, predictors: list[str]) -> datetime | None:
    """Start of the oldest log folder of any of the predictors (None: nothing logged yet)."""
    starts = []
    for predictor in predictors:
        for folder in _folders(store, model, predictor):
            try:
                starts.append(datetime.strptime(folder, FOLDER_FORMAT).replace(tzinfo=UTC))
            except ValueError:
                continue
    return min(starts) if starts else None


def read_file(data: bytes) -> pa.Table:
    """One JSONL log file as a table; nested `features` become `features.<name>` columns.

    Raises:
        ValueError: The file is empty, lacks the final newline (cut short), or a line is not JSON.
    """
    if not data:
        raise ValueError("empty file")
    if not data.endswith(b"\n"):
        raise ValueError("the last line has no newline: the file was cut short")
    try:
        table = pa_json.read_json(io.BytesIO(data))
    except pa.ArrowInvalid as exc:
        raise ValueError(f"not JSON lines: {exc}") from exc
    missing = {"request_id", "time"} - set(table.column_names)
    if missing:
        raise ValueError(f"rows lack {sorted(missing)}: not a kubeloop request log")
    return table.flatten()


def read_window(store: Store, model: str, predictors: list[str], window: Window) -> Traffic:
    """The rows each predictor served in `window` (status 200 only: errors carry no features)."""
    first_folder = datetime.fromtimestamp(
        int(window.start.timestamp()) // (FOLDER_MINUTES * 60) * FOLDER_MINUTES * 60, UTC
    )
    tables: list[pa.Table] = []
    traffic = Traffic(pd.DataFrame())
    for predictor in predictors:
        for folder, keys in sorted(_folders(store, model, predictor).items()):
            try:
                start = datetime.strptime(folder, FOLDER_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                traffic.skipped.update({k: f"folder {folder!r} is not a window start" for k in keys})
                continue
            if not first_folder <= start < window.end:
                continue
            for key in keys:
                try:
                    tables.append(read_file(store.read_bytes(key)))
                    traffic.files += 1
                except ValueError as exc:
                    traffic.skipped[key] = str(exc)
    if not tables:
        return traffic
    frame = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    times = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    inside = (times >= window.start) & (times < window.end)
    traffic.late_rows = int((~inside).sum())
    frame = frame[inside.to_numpy()]
    if "status" in frame.columns:
        frame = frame[frame["status"].fillna(200).astype(int) == 200]
    frame = frame.assign(time=times[frame.index])
    traffic.rows = frame.reset_index(drop=True)
    return traffic
