"""Train / validation / calibration / test splits: stratified random, temporal or by group."""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.common.config import DatasetConfig


def _cut(n: int, fractions: list[float]) -> list[int]:
    """Boundaries that cut n ordered items into the given fractions (rest goes last)."""
    edges = np.cumsum([0.0, *fractions]) * n
    return [int(round(e)) for e in edges]


def _held_out(dataset: DatasetConfig) -> list[float]:
    s = dataset.split
    return [s.test_fraction, s.calibration_fraction, s.validation_fraction]


def random_split(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    """Stratified on the task's key (binary: the label): each split keeps the label shares."""
    rng = np.random.default_rng(dataset.split.seed)
    assignment = pd.Series("train", index=frame.index)
    names = ["test", "calibration", "validation"]
    key = dataset.make_task().stratify_key(frame[dataset.label])
    for _, rows in frame.groupby(key).groups.items():
        shuffled = rng.permutation(np.asarray(rows))
        edges = _cut(len(shuffled), _held_out(dataset))
        for name, lo, hi in zip(names, edges, edges[1:], strict=False):
            assignment.loc[shuffled[lo:hi]] = name
    return assignment


def temporal_split(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    """Test = rows at or after the cutoff; before it, the latest rows calibrate and validate."""
    assert dataset.time_column
    times = pd.to_datetime(frame[dataset.time_column], utc=True, format="ISO8601")
    s = dataset.split
    if s.cutoff:
        cutoff = pd.Timestamp(s.cutoff)
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    else:
        cutoff = times.quantile(1 - s.test_fraction)
    assignment = pd.Series("test", index=frame.index)
    before = times[times < cutoff].sort_values(kind="stable").index
    n = len(before)
    n_cal = int(round(n * s.calibration_fraction / (1 - s.test_fraction)))
    n_val = int(round(n * s.validation_fraction / (1 - s.test_fraction)))
    assignment.loc[before[: n - n_cal - n_val]] = "train"
    assignment.loc[before[n - n_cal - n_val : n - n_cal]] = "validation"
    assignment.loc[before[n - n_cal :]] = "calibration"
    return assignment


def group_split(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    """Whole groups go to one split, so no patient or site is on both sides."""
    assert dataset.group_column
    rng = np.random.default_rng(dataset.split.seed)
    groups = frame[dataset.group_column]
    order = rng.permutation(groups.unique())
    if len(order) < 4:
        raise ValueError(
            f"group split needs at least 4 distinct '{dataset.group_column}' values, found "
            f"{len(order)}; use strategy 'random' or 'temporal'"
        )
    sizes = groups.value_counts().reindex(order).to_numpy()
    share = np.cumsum(sizes) / sizes.sum()
    s = dataset.split
    bounds = np.cumsum([s.test_fraction, s.calibration_fraction, s.validation_fraction])
    names = np.array(["test", "calibration", "validation", "train"])
    # A group belongs to the split in which its first row falls (at least one group each).
    starts = share - sizes / sizes.sum()
    index = np.searchsorted(bounds, starts, side="right")
    for k in range(3):
        if not (index == k).any():
            index[np.argmin(np.abs(starts - (bounds[k - 1] if k else 0.0)))] = k
    mapping = dict(zip(order, names[index], strict=True))
    return groups.map(mapping)


def assign_splits(frame: pd.DataFrame, dataset: DatasetConfig) -> pd.Series:
    """The split name of every row."""
    strategy = dataset.split.strategy
    if strategy == "temporal":
        return temporal_split(frame, dataset)
    if strategy == "group":
        return group_split(frame, dataset)
    return random_split(frame, dataset)
