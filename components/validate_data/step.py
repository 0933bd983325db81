"""Validate the dataset, record lineage, write the splits; a failed check blocks the pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.common.artifacts import SPLIT_NAMES, DatasetSchema, split_key
from components.common.data import local_path
from components.common.drift_reference import build_reference
from components.common.lineage import build_lineage, fingerprint_file
from components.common.step import GateFailed, StepContext
from components.common.tasks import Task
from components.validate_data.checks import POSITIVE, CheckResult
from components.validate_data.devices import device_summary
from components.validate_data.gallery import GALLERY_FILE
from components.validate_data.gate import check
from components.validate_data.leakage import split_leakage
from components.validate_data.profile import build_profile, profile_expectations, suite_json
from components.validate_data.reference import PROFILE_FILE, SUITE_FILE
from components.validate_data.report import data_docs_html
from components.validate_data.splits import assign_splits


def split_summary(frame: pd.DataFrame, task: Task, targets: np.ndarray) -> dict[str, dict[str, float]]:
    """Rows and the task's label summary (binary: prevalence) per split."""
    out = {}
    for name, rows in frame.groupby("__split").indices.items():
        out[str(name)] = task.split_summary(targets[rows])
    return out


def _summary_line(r: CheckResult) -> str:
    return f"{r.check}({r.column or '-'}): {r.observed}, expected {r.expected}"


def run(ctx: StepContext, parent_run: str, trigger: str) -> tuple[str, str]:
    """The step body. Returns (markdown report, splits prefix).

    Order: lineage, the Great Expectations gate, then (only on data that passed) the split
    and its leakage checks; the report covers both, and the gate blocks on either.
    """
    dataset = ctx.config.dataset
    modality = dataset.make_modality()
    with local_path(dataset.path) as path:
        fingerprint = fingerprint_file(path)
        frame = modality.gate_table(modality.read(path, dataset.path))
    lineage = build_lineage(ctx.config, ctx.run_id, fingerprint, parent_run, trigger)
    evidence = ctx.upstream("assemble", "evidence.json")  # a retraining run: why it started
    if ctx.store.exists(evidence):
        lineage["evidence"] = ctx.store.read_json(evidence)
    ctx.store.write_json(ctx.key("lineage.json"), lineage)
    gate = check(frame, ctx.config, ctx.store, modality)
    dataset, results, features, profiled = gate.dataset, gate.results, gate.features, gate.profiled
    ctx.notes.extend(f"inferred: {decision}" for decision in gate.decisions)
    ctx.store.write_text(ctx.key("data_docs.html"), data_docs_html(gate.ge_result))
    assignment = None
    if not gate.blocked:
        assignment = assign_splits(frame, dataset)
        identity = modality.identity_columns(features)
        results += split_leakage(frame, assignment, dataset, gate.rules, identity)
    failed = [r for r in results if r.blocking]
    warned = [r for r in results if not r.passed and not r.blocking]
    ctx.store.write_text(ctx.key(GALLERY_FILE), gate.gallery(dataset.path))
    report = gate.report(dataset.path)
    report += f"\nThumbnails of failing and outlying rows: `{GALLERY_FILE}` in this step's folder.\n"
    ctx.store.write_text(ctx.key("report.md"), report)
    ctx.store.write_json(ctx.key("checks.json"), [r.as_dict() for r in results])
    ctx.metrics.update(rows=len(frame), checks=len(results), failed_checks=len(failed), warnings=len(warned))
    ctx.notes.extend(f"warning: {_summary_line(r)}" for r in warned)
    if failed or assignment is None:
        raise GateFailed(f"{len(failed)} data check(s) failed: " + "; ".join(map(_summary_line, failed)))

    # The task learns what it needs of the training labels (multi-class: the output order).
    task = dataset.make_task().resolve(frame.loc[assignment.to_numpy() == "train", dataset.label])
    targets = task.frame_targets(frame)
    frame = frame.assign(__split=assignment.to_numpy())
    summary = split_summary(frame, task, targets)
    empty = [s for s in SPLIT_NAMES if s not in summary or task.degenerate(summary[s])]
    if empty:
        raise GateFailed(
            f"split(s) {empty} lack a class of the label (every split needs each class: {summary}); "
            "use more rows or larger split fractions"
        )
    train = frame[frame["__split"] == "train"]
    train_devices = device_summary(
        train,
        dataset.device_column,
        None if gate.modes is None else gate.modes[frame["__split"] == "train"],
        profiled,
    )
    profile = build_profile(
        train, dataset, profiled, source=f"run {ctx.run_id} train split", devices=train_devices
    )
    ctx.store.write_json(ctx.key(PROFILE_FILE), profile)
    expectations = profile_expectations(profile, set(frame.columns), dataset, gate.rules.profile, POSITIVE)
    ctx.store.write_json(ctx.key(SUITE_FILE), suite_json(expectations, f"{ctx.config.name}-reference"))
    schema = DatasetSchema(
        features=features,
        categorical=list(dataset.categorical or []),
        label=dataset.label,
        positive_value=task.positive_value,
        splits=summary,
        fingerprint=fingerprint,
        task=task.name,
        classes=task.classes or None,
        modality=modality.name,
        modality_settings=dataset.modality_settings(),
    )
    columns, categorical = modality.drift_columns(schema)
    drift, sample = build_reference(train, categorical, columns, source=f"run {ctx.run_id} train split")
    drift.save(ctx.store, ctx.prefix, sample)
    for name in SPLIT_NAMES:
        part = frame[frame["__split"] == name].drop(columns="__split")
        with ctx.store.staged(split_key(ctx.prefix, name)) as target:
            part.to_parquet(target, index=False)
    schema.write(ctx.store, ctx.prefix)
    overall = task.split_summary(targets)
    ctx.metrics.update(
        train_rows=summary["train"]["rows"],
        test_rows=summary["test"]["rows"],
        **{k: round(float(v), 4) for k, v in overall.items() if k != "rows"},
    )
    return report, ctx.prefix
