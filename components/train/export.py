"""ONNX export of a trained model, and its parity with torch on what serving returns."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from components.common.tasks import Task

PARITY_ATOL, PARITY_RTOL = 1e-5, 1e-4
"""ONNX parity on what serving returns (probabilities): |onnx - torch| <= atol + rtol * |torch|.
fp32 kernels differ in summation order; an absolute 1e-5 on raw logits failed real runs."""
PARITY_TOLERANCE = 1.0
"""`parity_gap` at or below this holds parity."""


def export_onnx(
    model: torch.nn.Module, example: torch.Tensor, path: Path, input_name: str = "features"
) -> None:
    """ONNX with a dynamic batch dimension: one input (`input_name`, shaped as `example`, the
    modality's example input) and the output 'logit' (batch, outputs)."""
    batch = torch.export.Dim("batch", min=1)
    # The exporter's graph optimiser logs every pass at INFO; keep the step log readable.
    logging.getLogger("onnxscript").setLevel(logging.WARNING)
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        input_names=[input_name],
        output_names=["logit"],
        dynamic_shapes=({0: batch},),
        external_data=False,
        verbose=False,
    )


def parity_gap(
    model: torch.nn.Module, onnx_path: Path, x: np.ndarray, task: Task, input_name: str = "features"
) -> float:
    """Worst |onnxruntime - torch| / (atol + rtol * |torch|) over the probabilities both give
    for the given inputs (the task's head on their logits); parity holds at <= 1."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_p = task.uncalibrated(session.run(["logit"], {input_name: x})[0])
    with torch.no_grad():
        torch_p = task.uncalibrated(model(torch.from_numpy(x)).numpy())
    return float(np.max(np.abs(onnx_p - torch_p) / (PARITY_ATOL + PARITY_RTOL * np.abs(torch_p))))
