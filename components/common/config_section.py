"""The base of every config section: unknown keys are errors, field docstrings are the docs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, field docstrings are docs."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)
