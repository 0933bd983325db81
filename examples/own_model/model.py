"""A network of your own for kubeloop: a residual MLP with layer norm, built from the model spec.

kubeloop imports this module from the config's folder (training.model.factory:
`model:residual_mlp`) and calls `residual_mlp(spec, **training.model.params)`. The spec says
how many inputs arrive (spec.n_inputs, in spec.input_names order), their training means and
standard deviations, and how many logits to return (spec.n_outputs). Any nn.Module that maps
(batch, n_inputs) float32 to (batch, n_outputs) logits and exports to ONNX will do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Block(nn.Module):
    """x + MLP(LayerNorm(x)): a pre-norm residual block."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, 2 * width),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(2 * width, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualMLP(nn.Module):
    """Standardise with the training split's statistics, project, residual blocks, logits."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Any, std: Any, outputs: int, width: int, blocks: int, dropout: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.project = nn.Linear(len(mean), width)
        self.blocks = nn.Sequential(*(Block(width, dropout) for _ in range(blocks)))
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.project((x - self.mean) / self.std)))


def residual_mlp(spec: Any, width: int = 64, blocks: int = 2, dropout: float = 0.1) -> nn.Module:
    """The factory kubeloop calls: one logit per output the task needs."""
    return ResidualMLP(spec.mean, spec.std, spec.n_outputs, width, blocks, dropout)
