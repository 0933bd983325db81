"""ONNX export of a trained model, and its parity with torch on what serving returns and on the
embedding the monitor reads.

A model gives an embedding by defining `forward_with_embedding(x) -> (logits, features)`, the
penultimate-layer features (batch, D) computed in the same pass as the logits (every built-in
model does). Its graph then has two outputs, `logit` and `embedding`; any other model exports
`logit` alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import nn

from components.common.onnx_outputs import EMBEDDING, LOGIT, GraphOutputs
from components.common.tasks import Task

if TYPE_CHECKING:
    import onnx_ir as ir

PARITY_ATOL, PARITY_RTOL = 1e-5, 1e-4
"""ONNX parity on what serving returns (probabilities): |onnx - torch| <= atol + rtol * |torch|.
fp32 kernels differ in summation order; an absolute 1e-5 on raw logits failed real runs."""
EMBEDDING_ATOL, EMBEDDING_RTOL = 1e-4, 1e-3
"""ONNX parity on the embedding (raw features, of any scale, summed over many more terms than a
probability): the same form, looser."""
PARITY_TOLERANCE = 1.0
"""`parity_gap` at or below this holds parity."""
PARITY_ROWS = 2048
"""Validation inputs the train step checks parity on."""
PARITY_BATCH = 64
"""Rows per run when checking parity (a batch of large images through a big network is large)."""


class ExportError(RuntimeError):
    """The exported graph cannot be loaded, lacks an output, or does not compute what torch does."""


@dataclass(frozen=True)
class Parity:
    """Worst |onnxruntime - torch| / (atol + rtol * |torch|) per output; parity holds at <= 1."""

    probability: float
    """Over the probabilities the task's head gives from the `logit` outputs."""
    embedding: float | None
    """Over the `embedding` outputs; None when the graph has none."""

    @property
    def gap(self) -> float:
        """The worst of the two."""
        return max(self.probability, self.embedding or 0.0)


WithEmbedding = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""`forward_with_embedding`: inputs -> (logits, penultimate features)."""


def embedding_forward(model: nn.Module) -> WithEmbedding | None:
    """The model's `forward_with_embedding`, or None when it has none."""
    method = getattr(model, "forward_with_embedding", None)
    return cast(WithEmbedding, method) if callable(method) else None


class _LogitAndEmbedding(nn.Module):
    """The model's `forward_with_embedding` as a module's forward, for the exporter."""

    def __init__(self, model: nn.Module, method: WithEmbedding) -> None:
        super().__init__()
        self.model, self.method = model, method
        self.training = model.training  # the exporter warns of a module left in training mode

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.method(x)


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, input_name: str = "features"
) -> GraphOutputs:
    """ONNX with a dynamic batch dimension: one input (`input_name`, shaped as `example`, the
    modality's example input) and the output 'logit' (batch, outputs), then 'embedding'
    (batch, D) when the model gives one. Returns the outputs written."""
    batch = torch.export.Dim("batch", min=1)
    # The exporter's graph optimiser logs every pass at INFO; keep the step log readable.
    logging.getLogger("onnxscript").setLevel(logging.WARNING)
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)
    method = embedding_forward(model)
    program = torch.onnx.export(
        _LogitAndEmbedding(model, method) if method else model,
        (example,),
        dynamo=True,
        dynamic_shapes=({0: batch},),
        verbose=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    _name_graph(program.model, input_name, [LOGIT, EMBEDDING] if method else [LOGIT])
    program.save(str(path), external_data=False)
    return GraphOutputs.of_onnx(path.read_bytes())


def _name_graph(model: ir.Model, input_name: str, output_names: list[str]) -> None:
    """Name the graph's input and outputs, first renaming any inner value that holds one of those
    names: the exporter names a value after the operation that made it (an nn.Embedding's is
    `embedding`), and onnxruntime refuses a graph with two values of one name."""
    import onnx_ir

    wanted = {input_name, *output_names}
    ends = {id(value) for value in (*model.graph.inputs, *model.graph.outputs)}
    nodes = list(onnx_ir.traversal.RecursiveGraphIterator(model.graph))
    taken = {value.name for node in nodes for value in node.outputs} | set(model.graph.initializers)
    for node in nodes:
        for value in node.outputs:
            if value.name in wanted and id(value) not in ends:
                index = 1
                while f"{value.name}_{index}" in taken or f"{value.name}_{index}" in wanted:
                    index += 1
                value.name = f"{value.name}_{index}"
                taken.add(value.name)
    model.graph.inputs[0].name = input_name
    for value, name in zip(model.graph.outputs, output_names, strict=True):
        value.name = name


def _worst(onnx: np.ndarray, torch_: np.ndarray, atol: float, rtol: float) -> float:
    return float(np.max(np.abs(onnx - torch_) / (atol + rtol * np.abs(torch_)), initial=0.0))


def check_parity(
    model: nn.Module, onnx_path: Path, x: np.ndarray, task: Task, input_name: str = "features"
) -> Parity:
    """Run the exported graph and torch on the same inputs (for images, the decoded images the
    modality prepares) and compare the probabilities the task's head gives from their logits
    and, when the model gives one, their embeddings.

    Raises:
        ExportError: The file is not a model onnxruntime can load, or it lacks an output the
            model gives (a truncated or altered export).
    """
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types; say what it means
        raise ExportError(
            f"the exported {onnx_path.name} cannot be loaded by onnxruntime ({type(exc).__name__}: "
            f"{str(exc).strip()[:300]}); the file is truncated or corrupt: export it again"
        ) from None
    names = [o.name for o in session.get_outputs()]
    method = embedding_forward(model)
    wanted = [LOGIT, EMBEDDING] if method else [LOGIT]
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ExportError(
            f"the exported {onnx_path.name} has outputs {names}, not {missing}, which the model "
            "gives; export it again"
        )
    probability, embedding = 0.0, 0.0
    for start in range(0, len(x), PARITY_BATCH):
        rows = np.ascontiguousarray(x[start : start + PARITY_BATCH], dtype=np.float32)
        outputs = dict(zip(wanted, session.run(wanted, {input_name: rows}), strict=True))
        with torch.no_grad():
            tensor = torch.from_numpy(rows)
            torch_p = task.uncalibrated(model(tensor).numpy())
            if method is not None:
                features = method(tensor)[1].numpy()
                embedding = max(
                    embedding, _worst(outputs[EMBEDDING], features, EMBEDDING_ATOL, EMBEDDING_RTOL)
                )
        onnx_p = task.uncalibrated(outputs[LOGIT])
        probability = max(probability, _worst(onnx_p, torch_p, PARITY_ATOL, PARITY_RTOL))
    return Parity(probability, embedding if method else None)


def parity_gap(
    model: nn.Module, onnx_path: Path, x: np.ndarray, task: Task, input_name: str = "features"
) -> float:
    """The worst parity ratio over both outputs (`check_parity`); parity holds at <= 1."""
    return check_parity(model, onnx_path, x, task, input_name).gap


def require_parity(parity: Parity, onnx_path: Path) -> None:
    """Raise unless parity holds on every output.

    Raises:
        ExportError: Naming the output that differs, by how much, and the tolerance.
    """
    if parity.probability > PARITY_TOLERANCE:
        raise ExportError(
            f"the exported {onnx_path.name} differs from torch by {parity.probability:.1f}x the "
            f"tolerance on served probabilities (|difference| <= {PARITY_ATOL} + {PARITY_RTOL} x "
            "|probability|); the exported model would not serve what was trained"
        )
    if parity.embedding is not None and parity.embedding > PARITY_TOLERANCE:
        raise ExportError(
            f"the exported {onnx_path.name} differs from torch by {parity.embedding:.1f}x the "
            f"tolerance on the embedding (|difference| <= {EMBEDDING_ATOL} + {EMBEDDING_RTOL} x "
            "|value|); the monitor would watch features the model does not compute"
        )
