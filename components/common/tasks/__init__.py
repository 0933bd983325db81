"""What varies with the prediction task (binary, later multi-class) lives behind `Task`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.common.tasks.base import Scores, Task
from components.common.tasks.binary import BinaryTask
from components.common.tasks.multiclass import MulticlassTask

__all__ = ["BinaryTask", "MulticlassTask", "Scores", "Task", "default_task", "task_for"]

TASKS = ("binary", "multiclass")
"""Every task by its `dataset.task` name."""


def task_for(
    name: str, label: str, positive_value: int | str | None, classes: Sequence[Any] | None = None
) -> Task:
    """The task named `name` for a label column.

    Args:
        positive_value: The positive label (binary) or the class of interest (multi-class).
        classes: The multi-class output order; None: the training split's sorted labels.

    Raises:
        ValueError: `name` is not a known task.
    """
    if name == "binary":
        return BinaryTask(label, 1 if positive_value is None else positive_value)
    if name == "multiclass":
        return MulticlassTask(label, positive_value, classes)
    raise ValueError(f"unknown task {name!r}; dataset.task is one of {', '.join(TASKS)}")


def default_task() -> Task:
    """The task of a version that records none (registered before the task was): one
    probability per row, positive label 1."""
    return task_for("binary", "label", None)
