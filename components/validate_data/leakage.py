"""Leakage between splits: held-out rows copied from training, groups on both sides."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.common.config import DatasetConfig, ValidationConfig
from components.validate_data.checks import CheckResult


def split_leakage(
    frame: pd.DataFrame,
    assignment: pd.Series,
    dataset: DatasetConfig,
    rules: ValidationConfig,
    features: list[str],
) -> list[CheckResult]:
    """Checks of the split just made; exact duplicates are found by hashing whole rows."""
    train = (assignment == "train").to_numpy()
    held = ~train
    columns = [*features, dataset.label]
    hashes = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    copied = np.isin(hashes[held], hashes[train])
    share = float(copied.mean()) if held.any() else 0.0
    results = [
        CheckResult(
            check="split_overlap",
            column=None,
            passed=share <= rules.max_split_overlap,
            observed=f"{share:.4f} ({int(copied.sum())} held-out rows also in train)",
            expected=f"<= {rules.max_split_overlap}",
            severity="error",
            expectation="kubeloop.split_overlap",
        )
    ]
    group = dataset.group_column
    if group and rules.group_overlap != "ignore" and dataset.split.strategy != "group":
        groups = frame[group].to_numpy()
        shared = sorted(set(groups[train]) & set(groups[held]), key=str)
        results.append(
            CheckResult(
                check="group_overlap",
                column=group,
                passed=not shared,
                observed=f"{len(shared)} on both sides, e.g. {[str(g) for g in shared[:5]]}",
                expected="no group in train and held-out splits",
                severity=rules.group_overlap,
                expectation="kubeloop.group_overlap",
            )
        )
    return results
