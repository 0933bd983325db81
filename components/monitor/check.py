"""Check one window of served traffic: data drift, prediction drift and performance decay."""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from components.common.artifacts import DatasetSchema, schema_key
from components.common.config import KubeloopConfig
from components.common.drift_reference import (
    EMBEDDING_REFERENCE,
    PREDICTION_REFERENCE,
    SAMPLE_FILE,
    Reference,
)
from components.common.modalities.base import features_of
from components.common.monitoring_config import duration_seconds
from components.common.onnx_outputs import decode_embedding
from components.common.registry import Registry
from components.common.store import Store
from components.monitor.drift import ColumnSettings, DriftSettings, DriftVerdict, check_drift
from components.monitor.embedding_drift import embedding_drift
from components.monitor.embedding_report import embedding_report_html
from components.monitor.performance import check_performance
from components.monitor.report import drift_report_html
from components.monitor.traffic import Window, read_window

logger = logging.getLogger(__name__)


def window_prefix(model: str, window: Window) -> str:
    """Where a window's check, report and decision are kept."""
    return f"monitor/{model}/windows/{window.name}"


def drift_settings(config: KubeloopConfig, reference: Reference) -> DriftSettings:
    """The monitoring section as drift settings.

    Raises:
        ValueError: monitoring.features names a column the reference does not have.
    """
    monitoring = config.monitoring
    known = {c.name for c in reference.columns}
    unknown = sorted(set(monitoring.features) - known)
    if unknown:
        raise ValueError(
            f"monitoring.features names {unknown}, which the model does not take; "
            f"its features are {sorted(known)}"
        )
    columns = {name: ColumnSettings(f.test, f.threshold, f.ignore) for name, f in monitoring.features.items()}
    return DriftSettings(monitoring.drift_share, monitoring.min_rows, columns)


@dataclass
class WindowCheck:
    """Everything found about one window (kept as check.json next to its report)."""

    model: str
    window: str
    start: str
    end: str
    version: str
    rows: int
    files: int
    skipped_files: dict[str, str]
    late_rows: int
    data_drift: dict[str, Any] | None = None
    embedding_drift: dict[str, Any] | None = None
    prediction_drift: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    findings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    report: str = ""

    @property
    def judged(self) -> bool:
        """True when any check reached a verdict (a window too small for drift may still show decay)."""
        parts = (self.data_drift, self.embedding_drift, self.prediction_drift, self.performance)
        return any(part is not None and not part.get("too_small") for part in parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    def evidence(self, report_uri: str) -> dict[str, Any]:
        """What a triggered run receives: the window, findings, drifted features and their scores."""
        drift = self.data_drift or {}
        return {
            "model": self.model,
            "version": self.version,
            "window": {"start": self.start, "end": self.end, "rows": self.rows},
            "findings": self.findings,
            "drifted_features": drift.get("drifted_columns", []),
            "scores": {c["column"]: round(c["score"], 6) for c in drift.get("columns", [])},
            "drifted_share": drift.get("drifted_share"),
            "embedding_drift": self.embedding_drift,
            "performance": [m for m in (self.performance or {}).get("metrics", []) if m["decayed"]],
            "report": report_uri,
        }


def _served_by(rows: pd.DataFrame, version: str) -> pd.DataFrame:
    if "model_version" not in rows.columns:
        return rows.iloc[0:0]
    return rows[rows["model_version"].astype(str) == version]


def check_window(
    store: Store, config: KubeloopConfig, window: Window, version: str, labels: pd.DataFrame | None = None
) -> WindowCheck:
    """Check `window` against production version `version`; writes check.json and report.html."""
    monitoring = config.monitoring
    prefix = Registry(store).version_prefix(config.name, version)
    traffic = read_window(store, config.name, monitoring.predictors, window)
    rows = traffic.rows
    check = WindowCheck(
        config.name,
        window.name,
        window.start.isoformat(),
        window.end.isoformat(),
        version,
        len(rows),
        traffic.files,
        traffic.skipped,
        traffic.late_rows,
    )
    check.problems += [f"skipped {key}: {why}" for key, why in traffic.skipped.items()]
    try:
        reference = Reference.load(store, prefix)
    except FileNotFoundError as exc:
        check.problems.append(f"no data-drift check: {exc}")
    else:
        names = [c.name for c in reference.columns]
        features = features_of(rows, names)
        verdict = check_drift(reference, features, drift_settings(config, reference))
        check.data_drift = verdict.to_dict()
        if verdict.dataset_drift:
            check.findings.append("data_drift")
        if verdict.columns:
            check.report = _write_report(
                store, prefix, window_prefix(config.name, window), features, verdict, config, check
            )
    if store.exists(f"{prefix}/{EMBEDDING_REFERENCE}"):
        _embedding_drift(store, config, prefix, version, rows, check)
    if monitoring.prediction_drift:
        _prediction_drift(store, config, prefix, version, rows, check)
    if monitoring.performance.enabled and labels is not None and len(labels):
        _performance(store, config, window, prefix, version, labels, check)
    store.write_json(f"{window_prefix(config.name, window)}/check.json", check.to_dict())
    return check


def _embedding_drift(
    store: Store, config: KubeloopConfig, prefix: str, version: str, rows: pd.DataFrame, check: WindowCheck
) -> None:
    """The window's served embeddings against the version's held-out ones."""
    served = _served_by(rows, version)
    logged = served["embedding"].dropna() if "embedding" in served.columns else pd.Series(dtype=object)
    settings = config.monitoring.embedding_drift
    if len(logged) < config.monitoring.min_rows:
        check.embedding_drift = {
            "too_small": True,
            "rows": len(logged),
            "min_rows": config.monitoring.min_rows,
        }
        return
    with store.local_copy(f"{prefix}/{EMBEDDING_REFERENCE}") as path:
        reference = np.load(path)
    current = np.stack([decode_embedding(str(text)) for text in logged])
    try:
        verdict = embedding_drift(reference, current, settings.method, settings.threshold, settings.bootstrap)
    except ValueError as exc:  # e.g. embeddings of another model logged under this version
        check.problems.append(f"no embedding-drift check: {exc}")
        return
    record = {**asdict(verdict), "rows": len(current), "reference_rows": len(reference)}
    atypical = served.loc[logged.index[list(verdict.atypical)]]
    record["atypical"] = [
        {"request_id": str(r["request_id"]), "row": int(r["row"]), "stored": _stored(r)}
        for _, r in atypical.iterrows()
    ]
    record["report"] = _write_embedding_report(store, config, check.window, record, atypical)
    check.embedding_drift = record
    if verdict.drifted:
        check.findings.append("embedding_drift")


def _stored(row: pd.Series) -> str | None:
    value = row.get("stored")
    return str(value) if isinstance(value, str) else None


def _write_embedding_report(
    store: Store, config: KubeloopConfig, window: str, record: dict[str, Any], atypical: pd.DataFrame
) -> str:
    """The window's embeddings.html: the verdict and the atypical images (thumbnails where kept)."""
    from components.common.modalities.image_prep import thumbnail_of

    rows, thumbnails = [], []
    for _, row in atypical.iterrows():
        features = {c[len("features.") :]: row[c] for c in atypical.columns if c.startswith("features.")}
        rows.append({"request_id": row["request_id"], "row": int(row["row"]), "features": features})
        key = _stored(row)
        data = store.read_bytes(key) if key and store.exists(key) else None
        thumbnails.append(thumbnail_of(data, key or "", 134, 100_000_000) if data else None)
    key = f"monitor/{config.name}/windows/{window}/embeddings.html"
    store.write_text(key, embedding_report_html(window, record, rows, thumbnails))
    return key


def _prediction_drift(
    store: Store, config: KubeloopConfig, prefix: str, version: str, rows: pd.DataFrame, check: WindowCheck
) -> None:
    try:
        reference = Reference.load(store, prefix, PREDICTION_REFERENCE)
    except FileNotFoundError as exc:
        check.problems.append(f"no prediction-drift check: {exc}")
        return
    answers = answer_frame(reference, _served_by(rows, version))
    verdict = check_drift(reference, answers, DriftSettings(0.5, config.monitoring.min_rows))
    check.prediction_drift = verdict.to_dict()
    if any(c.startswith("probability") for c in verdict.drifted_columns):
        check.findings.append("prediction_drift")


def answer_frame(reference: Reference, served: pd.DataFrame) -> pd.DataFrame:
    """The served answers the version's prediction reference holds (binary: probability and
    decision; multi-class: probability_<class> per class and decision), as logged."""
    names = [c.name for c in reference.columns]
    return pd.DataFrame({c: served[c] if c in served.columns else pd.Series(dtype=float) for c in names})


def _performance(
    store: Store,
    config: KubeloopConfig,
    window: Window,
    prefix: str,
    version: str,
    labels: pd.DataFrame,
    check: WindowCheck,
) -> None:
    settings = config.monitoring.performance
    span = Window(window.end - timedelta(seconds=duration_seconds(settings.window)), window.end)
    served = _served_by(read_window(store, config.name, config.monitoring.predictors, span).rows, version)
    joined = served.assign(
        row=served["row"].astype("int64"), request_id=served["request_id"].astype(str)
    ).merge(labels, on=["request_id", "row"], how="inner")
    card = store.read_json(f"{prefix}/metrics.json")
    versioned = store.exists(schema_key(prefix))  # the version's own classes, where it records them
    task = DatasetSchema.read(store, prefix).make_task() if versioned else config.dataset.make_task()
    verdict = check_performance(
        joined,
        card,
        task,
        dict(settings.max_drop if settings.max_drop is not None else task.default_decay),
        settings.min_labeled,
        settings.min_positives,
    )
    check.performance = verdict.to_dict()
    if verdict.decayed:
        check.findings.append("performance")


def _write_report(
    store: Store,
    prefix: str,
    out: str,
    features: pd.DataFrame,
    verdict: DriftVerdict,
    config: KubeloopConfig,
    check: WindowCheck,
) -> str:
    """The Evidently report's key ('' when the version has no sample or Evidently fails)."""
    key = f"{prefix}/{SAMPLE_FILE}"
    if not store.exists(key):
        return ""
    reference_sample = pd.read_parquet(io.BytesIO(store.read_bytes(key)))
    try:
        html = drift_report_html(reference_sample, features, verdict, config.monitoring.drift_share)
    except Exception as exc:  # noqa: BLE001 - the report is for people; the verdict stands without it
        logger.warning("Evidently report of %s failed: %s", out, exc)
        check.problems.append(f"no HTML report: Evidently failed ({type(exc).__name__}: {exc})")
        return ""
    store.write_text(f"{out}/report.html", html)
    return f"{out}/report.html"
