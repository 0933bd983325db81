"""The retraining set: the reference data plus recent labeled traffic, mixed as configured.

Served rows whose labels arrived (labels/<model>/) within `retraining.traffic_window` join
the reference dataset (`dataset.path`), at most `traffic_share` of the result: when there is
more labeled traffic, the newest rows are kept. Their inputs come from the request log through
the modality: a table's logged features, or for images the served files kept under `served/`
(`deployment.serving.sample_share`), named by their location in the store in the new manifest.
Traffic rows get the dataset's id (`traffic:<request id>:<row>`), time (when served) and group
(`traffic`, or the group a label file names) columns, so every later step treats them like any
other row; the temporal split puts them in the test set
when they are the newest, which is where a new population should be judged.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from components.common.config import KubeloopConfig
from components.common.data import local_path
from components.common.labels import read_labels
from components.common.monitoring_config import duration_seconds
from components.common.store import Store
from components.monitor.traffic import Window, read_window


@dataclass
class Assembled:
    """What went into the retraining set."""

    path: str  # where the dataset was written (a local path or s3:// URI)
    reference_rows: int
    traffic_rows: int
    labeled_rows_available: int
    labeled_rows_without_inputs: int  # labeled, but the served input was not kept (sample_share)
    window: dict[str, str]
    skipped_files: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def labeled_traffic(
    store: Store, config: KubeloopConfig, now: datetime
) -> tuple[pd.DataFrame, Window, dict, int]:
    """Served rows of the traffic window that have labels and whose inputs the log holds, as
    dataset rows (newest last); a label file's other columns (e.g. the device) join them. Also
    the window, the files skipped and how many labeled rows had no kept input."""
    span = Window(now - timedelta(seconds=duration_seconds(config.monitoring.retraining.traffic_window)), now)
    traffic = read_window(store, config.name, config.monitoring.predictors, span)
    labels, skipped = read_labels(store, config.name, extra=True)
    skipped = {**traffic.skipped, **skipped}
    rows = traffic.rows
    if rows.empty or labels.empty:
        return pd.DataFrame(), span, skipped, 0
    rows = rows.assign(row=rows["row"].astype("int64"), request_id=rows["request_id"].astype(str))
    dataset = config.dataset
    names = [c[len("features.") :] for c in rows.columns if c.startswith("features.")]
    features = dataset.features or names
    known = [c for c in labels.columns if c not in ("request_id", "row", "label", *features)]
    labels = labels.rename(columns={c: f"labels.{c}" for c in known})
    joined = rows.merge(labels, on=["request_id", "row"], how="inner").sort_values("time", kind="stable")
    joined = joined.reset_index(drop=True)
    frame = dataset.make_modality().served_inputs(joined, features, store)
    without_inputs = len(joined) - len(frame)
    joined = joined.loc[frame.index]
    for column in known:
        frame[column] = joined[f"labels.{column}"].to_numpy()
    frame[dataset.label] = joined["label"].to_numpy()
    if dataset.id_column:
        frame[dataset.id_column] = (
            "traffic:" + joined["request_id"] + ":" + joined["row"].astype(str)
        ).to_numpy()
    if dataset.time_column:
        frame[dataset.time_column] = joined["time"].dt.tz_convert(None).to_numpy()
    if dataset.group_column and dataset.group_column not in known:
        frame[dataset.group_column] = "traffic"
    return frame.reset_index(drop=True), span, skipped, without_inputs


def mix(reference: pd.DataFrame, traffic: pd.DataFrame, share: float) -> pd.DataFrame:
    """Reference rows plus the newest traffic rows, traffic at most `share` of the result."""
    if share >= 1:
        keep = len(traffic)
    else:
        keep = min(len(traffic), int(share * len(reference) / (1 - share)))
    kept = traffic.iloc[len(traffic) - keep :] if keep else traffic.iloc[0:0]
    if kept.empty:
        return reference
    kept, reference = kept.copy(), reference.copy()
    for column in kept.columns:
        if column not in reference.columns or kept[column].dtype == reference[column].dtype:
            continue
        try:
            if pd.api.types.is_datetime64_any_dtype(kept[column]):  # served times; a CSV's are text
                reference[column] = pd.to_datetime(reference[column])
            kept[column] = kept[column].astype(reference[column].dtype)
        except (ValueError, TypeError):  # e.g. numeric exam ids next to traffic ids: both become text
            kept[column] = kept[column].astype(str)
            reference[column] = reference[column].astype(str)
    if reference.empty:
        return kept.reset_index(drop=True)
    return pd.concat([reference, kept], ignore_index=True)


def assemble(store: Store, config: KubeloopConfig, key: str, now: datetime) -> Assembled:
    """Write the retraining set to `key` in the store (Parquet).

    Raises:
        ValueError: Fewer labeled served rows than `retraining.min_traffic_rows`.
    """
    traffic, span, skipped, without_inputs = labeled_traffic(store, config, now)
    settings = config.monitoring.retraining
    if len(traffic) < settings.min_traffic_rows:
        unkept = (
            f" ({without_inputs} more had labels but their inputs were not kept: raise "
            "deployment.serving.sample_share)"
            if without_inputs
            else ""
        )
        raise ValueError(
            f"{len(traffic)} labeled served rows in the last {settings.traffic_window}{unkept}; retraining "
            f"needs monitoring.retraining.min_traffic_rows={settings.min_traffic_rows}. Upload labels under "
            f"labels/{config.name}/ (request_id, row, label) or lower the minimum"
        )
    with local_path(config.dataset.path) as path:
        reference = config.dataset.make_modality().read(path, config.dataset.path)
    mixed = mix(reference, traffic, settings.traffic_share)
    buffer = io.BytesIO()
    mixed.to_parquet(buffer, index=False)
    store.write_bytes(key, buffer.getvalue())
    return Assembled(
        path=store.location(key),
        reference_rows=len(reference),
        traffic_rows=len(mixed) - len(reference),
        labeled_rows_available=len(traffic),
        labeled_rows_without_inputs=without_inputs,
        window={"start": span.start.isoformat(), "end": span.end.isoformat()},
        skipped_files=skipped,
    )


def retraining_config(config: KubeloopConfig, data_path: str) -> KubeloopConfig:
    """The config the retraining run's steps get: the assembled data, its split, the configured rollout."""
    deploy = config.monitoring.retraining.deploy
    data = config.model_dump(mode="json")
    data["dataset"]["path"] = data_path
    data["dataset"]["generator"] = None
    if config.monitoring.retraining.split:
        data["dataset"]["split"]["strategy"] = config.monitoring.retraining.split
    if config.monitoring.retraining.warm_start:
        data["training"]["init_from"] = {"model": config.name, "version": "production", "uri": None}
        settings = config.monitoring.retraining
        data["training"]["epochs"] = settings.warm_start_epochs or config.training.epochs
        data["training"]["learning_rate"] = settings.warm_start_learning_rate or config.training.learning_rate
    data["deployment"]["auto_deploy"] = deploy != "none"
    if deploy != "none":
        data["deployment"]["strategy"] = deploy
    return KubeloopConfig.model_validate(data)
