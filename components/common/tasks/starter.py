"""`kubeloop init`: the task a label column calls for, and its classes."""

from __future__ import annotations

import pandas as pd

from components.common.commented_yaml import Entry, plain

MAX_CLASSES = 50
"""More label values than this read as a number to predict, which kubeloop does not do."""
MAX_FLOAT_CLASSES = 10
"""A float label with more values than this reads as a quantity too."""
POSITIVE_WORDS = ("1", "true", "yes")


def task_entries(values: pd.Series) -> list[Entry]:
    """dataset.task and its positive value or classes, each with why.

    Raises:
        ValueError: The label has gaps, one value, or the many values of a quantity (the message
            continues "label 'NAME' ...").
    """
    if values.isna().any():
        raise ValueError(
            f"is missing in {int(values.isna().sum())} of {len(values)} rows; drop or label those rows first"
        )
    counts = values.value_counts()
    if len(counts) < 2:
        raise ValueError(f"has one value ({counts.index[0]!r}); a model needs two or more")
    floats = pd.api.types.is_float_dtype(values)
    if len(counts) > MAX_CLASSES or (floats and len(counts) > MAX_FLOAT_CLASSES):
        raise ValueError(
            f"has {len(counts)} distinct values, a quantity rather than classes; kubeloop trains "
            "classifiers: bin it into classes, or pass --label with a class column"
        )
    shown = [f"{k} {v / len(values):.1%}" for k, v in counts.sort_index().items()]
    shares = ", ".join(shown[:6]) + (", ..." if len(shown) > 6 else "")
    if len(counts) == 2:
        # The 1 / True / yes of such a pair is the case to detect; otherwise the rarer value.
        flagged = [v for v in counts.index if str(v).lower() in POSITIVE_WORDS]
        positive = flagged[0] if len(flagged) == 1 else counts.index[-1]
        return [
            Entry("task", "binary", f"2 label values: {shares}"),
            Entry(
                "positive_value", plain(positive), "the case to detect: the 1/yes/true value, or the rarer"
            ),
        ]
    classes = [str(v) for v in sorted(counts.index, key=str)]
    return [
        Entry("task", "multiclass", f"{len(counts)} label values: {shares}"),
        Entry("classes", classes, "the output order; reorder as you like"),
    ]
