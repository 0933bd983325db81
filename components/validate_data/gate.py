"""The data gate on one table: the checks the step and `kubeloop validate` share, and what a
person reads of them (the Markdown report and the gallery page)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from components.common.config import DatasetConfig, KubeloopConfig, ValidationConfig
from components.common.modalities import Modality
from components.common.store import Store
from components.validate_data.checks import (
    CheckResult,
    class_balance,
    feature_columns,
    gate_rules,
    validate_frame,
)
from components.validate_data.devices import (
    device_checks,
    device_labels,
    device_summary,
    device_table,
    unexpected_rows,
)
from components.validate_data.gallery import gate_gallery
from components.validate_data.infer import infer_columns
from components.validate_data.reference import reference_profile
from components.validate_data.report import bad_row_sample, render_report


@dataclass
class Gate:
    """A checked table and everything the checks found; `results` may grow (the split's checks)."""

    frame: pd.DataFrame
    dataset: DatasetConfig
    """The config's dataset with what was inferred of its columns."""
    modality: Modality
    rules: ValidationConfig
    """The validation rules with the modality's column rules."""
    results: list[CheckResult]
    ge_result: Any
    """Great Expectations' validation result (for its data docs)."""
    reference: dict[str, Any] | None
    features: list[str]
    profiled: list[str]
    """The columns the profile compares (tables: the features; images: measured properties)."""
    modes: pd.Series | None
    devices: dict[str, dict[str, Any]]
    """The per-device summary of this table."""
    decisions: list[str] = field(default_factory=list)
    """What was inferred of the columns."""

    @property
    def blocked(self) -> bool:
        """Whether an error-severity check failed."""
        return any(r.blocking for r in self.results)

    def report(self, source: str) -> str:
        """The Markdown report (verdict, checks, failing rows, devices)."""
        return render_report(
            source,
            len(self.frame),
            self.results,
            bad_row_sample(self.frame, self.results, self.rules),
            self.reference["source"] if self.reference else None,
            self.decisions,
            devices=device_table(self.devices, self.dataset.device_column, self.profiled),
        )

    def gallery(self, source: str) -> str:
        """The HTML page of failing, outlying and new-device rows."""
        known = (self.reference or {}).get("devices")
        return gate_gallery(
            self.frame,
            self.results,
            self.rules,
            self.modality,
            self.modality.gallery_columns(self.features),
            self.profiled,
            unexpected_rows(self.frame, self.dataset.device_column, self.modes, known),
            devices=device_labels(self.frame, self.dataset.device_column),
            title=f"Dataset {source}",
        )


def check(frame: pd.DataFrame, config: KubeloopConfig, store: Store, modality: Modality) -> Gate:
    """Run the gate's checks (columns, rows, label, profile and devices) on the gate's table."""
    rules = gate_rules(config.validation, modality)
    inferred = infer_columns(frame, config.dataset)
    dataset = inferred.dataset
    reference = reference_profile(store, config)
    results, ge_result = validate_frame(frame, dataset, rules, reference)
    results += class_balance(frame, dataset, rules)
    features = feature_columns(frame, dataset)
    profiled = modality.scalar_columns(features)
    modes = modality.modes(frame)
    devices = device_summary(frame, dataset.device_column, modes, profiled)
    results += device_checks(
        devices,
        (reference or {}).get("devices"),
        dataset.device_column,
        config.validation.profile,
        reference["source"] if reference else "the reference",
    )
    return Gate(
        frame=frame,
        dataset=dataset,
        modality=modality,
        rules=rules,
        results=results,
        ge_result=ge_result,
        reference=reference,
        features=features,
        profiled=profiled,
        modes=modes,
        devices=devices,
        decisions=list(inferred.decisions),
    )
