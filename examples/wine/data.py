"""Writes scikit-learn's bundled wine data (178 real wines, 3 cultivars) as a table."""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_wine

from components.common.data import write_table

CULTIVARS = ("barolo", "grignolino", "barbera")
"""The three cultivars of the UCI wine data (Forina et al.), in scikit-learn's class order."""


def write(path: str | Path) -> Path:
    """Write the dataset to `path` (.csv or .parquet); the label is the cultivar's name."""
    bunch = load_wine(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: c.replace("/", "_per_").replace(" ", "_"))
    frame["cultivar"] = [CULTIVARS[int(t)] for t in frame.pop("target")]
    return write_table(frame, path)
