"""The named outputs of a registered ONNX graph: which of them scores are read from, and the embedding.

The train step exports `logit` (batch, outputs) and, when the model gives one (a
`forward_with_embedding` method, as every built-in model has), `embedding` (batch, D): the
penultimate-layer features, for the drift monitor. Calibration may add `probability`. Serving
and evaluation read only the score outputs, so an embedding (or any later output) changes no
answer. The serving environment (Python 3.12) imports this module: nothing here needs more
than it has (onnx only inside `GraphOutputs.of_onnx`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.common.calibration import PROBABILITY_OUTPUT

LOGIT = "logit"
"""The uncalibrated logits (batch, outputs): every exported graph has them."""
EMBEDDING = "embedding"
"""The penultimate-layer features (batch, D), exported when the model gives them."""
SCORE_OUTPUTS = (LOGIT, PROBABILITY_OUTPUT)
"""What a served or evaluated answer is computed from (`calibration.probabilities`)."""


def score_outputs(names: Iterable[str]) -> list[str]:
    """The graph's outputs that scoring reads, in the graph's order: `logit`, and `probability`
    when calibration folded it in; never the embedding.

    Raises:
        ValueError: The graph has no `logit` output (it is not a kubeloop export).
    """
    names = list(names)
    if LOGIT not in names:
        raise ValueError(
            f"the ONNX model has outputs {names} but no {LOGIT!r}; export it with "
            "components.train.export.export_onnx"
        )
    return [name for name in names if name in SCORE_OUTPUTS]


@dataclass(frozen=True)
class GraphOutputs:
    """What an exported graph gives: its output names and the embedding's width.

    The train step records it in model_code.json (so each version's lineage.json has it under
    `model.outputs`); `of_onnx` reads the same from a version's model.onnx.
    """

    names: tuple[str, ...]
    """The graph's outputs, in order."""
    embedding_dim: int | None
    """D of the `embedding` output (batch, D); None: the model gives no embedding."""

    @property
    def embedding(self) -> str | None:
        """The embedding output's name, or None."""
        return EMBEDDING if self.embedding_dim is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"names": list(self.names), "embedding_dim": self.embedding_dim}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphOutputs:
        """Inverse of to_dict."""
        dim = data.get("embedding_dim")
        return cls(tuple(str(n) for n in data["names"]), None if dim is None else int(dim))

    @classmethod
    def of_onnx(cls, model: bytes) -> GraphOutputs:
        """The outputs of a serialised ONNX model (needs the onnx package).

        Raises:
            ValueError: The embedding's width is not a fixed number.
        """
        import onnx

        graph = onnx.load_from_string(model).graph
        names = tuple(output.name for output in graph.output)
        dim: int | None = None
        for output in graph.output:
            if output.name == EMBEDDING:
                dims = output.type.tensor_type.shape.dim
                if len(dims) != 2 or not dims[1].HasField("dim_value"):
                    raise ValueError(f"the ONNX {EMBEDDING!r} output is not (batch, D) with a fixed D")
                dim = int(dims[1].dim_value)
        return cls(names, dim)


def encode_embeddings(rows: np.ndarray) -> list[str]:
    """Each row of embeddings as the request log keeps it: little-endian float32, base64 (a
    tenth of the cost of a JSON list of floats on the request path, and a third of its size)."""
    vectors = np.ascontiguousarray(rows, dtype="<f4")
    return [base64.b64encode(vector.tobytes()).decode() for vector in vectors]


def decode_embedding(logged: str) -> np.ndarray:
    """A request-log row's embedding (`encode_embeddings`) as float32 values."""
    return np.frombuffer(base64.b64decode(logged), dtype="<f4")
