"""Model specs for tests that build tabular models without running the train step."""

from __future__ import annotations

from components.common.modalities import TabularModality
from components.common.model_spec import ModelSpec
from components.common.preprocessing import Preprocessing
from components.common.tasks import BinaryTask, Task


def tabular_spec(prep: Preprocessing, task: Task | None = None) -> ModelSpec:
    """The spec the train step gives a factory for `prep`'s encoding (default: a binary label)."""
    return TabularModality().model_spec(prep, task or BinaryTask("label", 1))
