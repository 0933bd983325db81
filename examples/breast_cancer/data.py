"""Writes scikit-learn's bundled Wisconsin breast-cancer data (569 real cases) as a table."""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_breast_cancer

from components.common.data import write_table


def write(path: str | Path) -> Path:
    """Write the dataset to `path` (.csv or .parquet); label 1 = malignant.

    scikit-learn codes malignant as 0; screening reads more naturally with the disease as
    the positive class, so the label is flipped.
    """
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["label"] = 1 - frame.pop("target")
    return write_table(frame, path)
