"""Evidently's HTML drift report, on bounded samples, with the tests of the monitor's verdict.

Evidently takes minutes on a million rows; the report is for people, so it runs on the
reference's stored sample and at most SAMPLE_ROWS rows of the window. The verdict (JSON) is
computed on every row; each column's test is passed to Evidently so the report shows the
same test the verdict used, on the sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.common.drift_reference import sample
from components.monitor.drift import DriftVerdict


def drift_report_html(
    reference_sample: pd.DataFrame,
    current: pd.DataFrame,
    verdict: DriftVerdict,
    drift_share: float,
) -> str:
    """Evidently's DataDriftPreset report of `current` (sampled) against the reference sample.

    Only the columns the verdict judged are shown, each with the verdict's test and threshold.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [c.column for c in verdict.columns]
    if not columns:
        raise ValueError("the verdict judged no column: there is nothing to report")
    reference = reference_sample[columns].copy()
    window = sample(current[columns]).copy()
    # A numerical column with two values or fewer (one device's constant image width) is
    # tested as categories (z, chi-square), as Evidently does: the report must call it one.
    kinds = {c.column: "categorical" if c.test in ("z", "chisquare") else c.kind for c in verdict.columns}
    for frame in (reference, window):
        for name in columns:
            if kinds[name] == "categorical":
                frame[name] = frame[name].astype("string")
            else:
                frame[name] = pd.to_numeric(frame[name], errors="coerce")
    definition = DataDefinition(
        numerical_columns=[c for c in columns if kinds[c] == "numerical"],
        categorical_columns=[c for c in columns if kinds[c] == "categorical"],
    )
    preset = DataDriftPreset(
        drift_share=drift_share,
        per_column_method={c.column: c.test for c in verdict.columns},
        per_column_threshold={c.column: c.threshold for c in verdict.columns},
    )
    # Evidently correlates every pair of columns; a constant one (a single device's image size)
    # has no deviation, and numpy's warning about it would only be noise in the monitor's output.
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = Report([preset]).run(
            Dataset.from_pandas(window, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        return str(snapshot.get_html_str(as_iframe=False))
