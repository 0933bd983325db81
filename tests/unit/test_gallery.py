"""The error gallery picks the most confident mistakes of each kind and shows them by slice."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from components.common.config import DatasetConfig, SliceSpec
from components.common.modalities import TabularModality
from components.common.tasks import BinaryTask, MulticlassTask
from components.evaluate.gallery import error_gallery


def test_confidence_is_the_probability_of_the_decided_answer() -> None:
    binary = BinaryTask("label", 1)
    p = np.array([0.9, 0.2, 0.6])
    assert binary.confidence(p, binary.decide(p, {"threshold": 0.5})).tolist() == [0.9, 0.8, 0.6]
    multi = MulticlassTask("label", None, ["a", "b", "c"])
    q = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert multi.confidence(q, multi.decide(q, {})).tolist() == [0.7, 0.6]


def test_table_rows_show_their_values_most_confident_mistake_first() -> None:
    test = pd.DataFrame({"age": [40, 50, 60, 70, 80], "scanner": ["A", "A", "B", "B", "A"]})
    y = np.array([1, 1, 1, 0, 0])
    p = np.array([0.10, 0.01, 0.90, 0.95, 0.20])  # rows 0 and 1 missed (1 more surely), 3 a false alarm
    fragment = error_gallery(
        test,
        BinaryTask("label", 1),
        y,
        p,
        {"threshold": 0.5},
        TabularModality(),
        ["age", "scanner"],
        [SliceSpec(column="scanner")],
    )
    negatives = fragment[fragment.index("false negative") : fragment.index("false positive")]
    assert "2 on the test split" in negatives and "scanner=A" in negatives
    assert negatives.index("0.990") < negatives.index("0.900")  # the surest miss first
    assert "<td>50</td>" in negatives and "<img" not in fragment
    assert "p(decided) 0.950" in fragment[fragment.index("false positive") :]


def test_images_show_as_thumbnails(tmp_path: Path) -> None:
    rows = []
    for index in range(6):
        buffer = io.BytesIO()
        Image.fromarray(np.full((40, 30), 40 * index, dtype=np.uint8)).save(buffer, format="PNG")
        (tmp_path / f"{index}.png").write_bytes(buffer.getvalue())
        rows.append({"image": str(tmp_path / f"{index}.png"), "label": ["a", "b", "c"][index % 3]})
    test = pd.DataFrame(rows)
    task = MulticlassTask("label", None, ["a", "b", "c"])
    y = task.frame_targets(test)
    p = np.tile([0.8, 0.1, 0.1], (6, 1))  # everything called 'a': four mistakes
    modality = DatasetConfig(path="m.csv", label="label", modality="images").make_modality()
    fragment = error_gallery(test, task, y, p, {}, modality, ["image"])
    assert fragment.count("<img") == 4 and "b called a" in fragment and "c called a" in fragment
    assert "a called" not in fragment
