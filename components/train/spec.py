"""The model spec a factory receives (kept here too: user code may import it from this path)."""

from components.common.model_spec import ModelSpec

__all__ = ["ModelSpec"]
