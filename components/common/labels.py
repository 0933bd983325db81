"""Labels of served rows, which arrive after serving: files under `labels/<model>/` in the store.

Each file (JSONL, CSV or Parquet) has `request_id`, an optional `row` (default 0: the row's
index in its request) and `label`; other columns (what the hospital knows of the exam, such as
the device) join the row when the retraining run assembles its data. The monitor joins them to
judge performance, the retraining run to train on traffic, and the rollout analysis to judge a
candidate's decisions.
"""

from __future__ import annotations

import io

import pandas as pd

from components.common.store import Store


def read_labels(store: Store, model: str, extra: bool = False) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every label file under `labels/<model>/`: (request_id, row, label, and with `extra` the
    files' other columns) and the files skipped."""
    frames, skipped = [], {}
    for key in store.list(f"labels/{model}"):
        try:
            data = store.read_bytes(key)
            if key.endswith(".parquet"):
                frame = pd.read_parquet(io.BytesIO(data))
            elif key.endswith(".csv"):
                frame = pd.read_csv(io.BytesIO(data), dtype={"request_id": str})
            elif key.endswith(".jsonl"):
                frame = pd.read_json(io.BytesIO(data), lines=True, dtype={"request_id": str})
            else:
                skipped[key] = "not .jsonl, .csv or .parquet"
                continue
        except (ValueError, OSError) as exc:
            skipped[key] = str(exc)
            continue
        if not {"request_id", "label"} <= set(frame.columns):
            skipped[key] = f"needs columns request_id and label; has {list(frame.columns)}"
            continue
        if "row" not in frame.columns:
            frame = frame.assign(row=0)
        kept = list(frame.columns) if extra else ["request_id", "row", "label"]
        frames.append(frame[kept].astype({"request_id": str, "row": "int64"}))
    if not frames:
        return pd.DataFrame(columns=["request_id", "row", "label"]), skipped
    labels = pd.concat(frames, ignore_index=True).drop_duplicates(["request_id", "row"], keep="last")
    return labels, skipped
