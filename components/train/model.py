"""The tabular MLP: standardisation and categorical embeddings folded into the graph, logits out
(and the last hidden layer, for the exported embedding)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from components.common.model_spec import ModelSpec
from components.common.preprocessing import Preprocessing


def embedding_dim(cardinality: int, cap: int | None = None) -> int:
    """fastai's rule of thumb, min(16, round(1.6 * n^0.56)), or a fixed size when given."""
    return cap if cap is not None else max(1, min(16, round(1.6 * cardinality**0.56)))


class TabularMLP(nn.Module):
    """(x - mean) / std for numeric inputs, embeddings for category codes, then
    Linear-ReLU-Dropout blocks, then `outputs` logits per row."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: np.ndarray,
        std: np.ndarray,
        hidden_sizes: list[int],
        dropout: float,
        embeddings: list[tuple[int, int]] | None = None,
        outputs: int = 1,
    ) -> None:
        """Build the layers.

        Args:
            embeddings: (codes, size) per categorical input, which are the last inputs; empty
                when categories come one-hot encoded.
            outputs: Logits per row (the task's width: 1 binary, K classes).
        """
        super().__init__()
        self.n_numeric = len(mean) - len(embeddings or [])
        self.register_buffer("mean", torch.as_tensor(mean[: self.n_numeric], dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std[: self.n_numeric], dtype=torch.float32))
        # padding_idx=0: code 0 (an unseen category) maps to a zero vector that never trains.
        self.embeddings = nn.ModuleList(nn.Embedding(n, d, padding_idx=0) for n, d in embeddings or [])
        layers: list[nn.Module] = []
        width = self.n_numeric + sum(d for _, d in embeddings or [])
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*layers)

    def _prepared(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised numeric inputs, then each category's embedding."""
        numeric = (x[:, : self.n_numeric] - self.mean) / self.std
        if not len(self.embeddings):
            return numeric
        codes = x[:, self.n_numeric :].long()
        return torch.cat([numeric, *(table(codes[:, i]) for i, table in enumerate(self.embeddings))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, outputs)."""
        return self.net(self._prepared(x))

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (batch, outputs), the last hidden layer's activations (batch, last hidden
        size; without hidden layers, the prepared inputs)) in one pass."""
        features = self.net[:-1](self._prepared(x))
        return self.net[-1](features), features


def build_model(
    prep: Preprocessing,
    hidden_sizes: list[int],
    dropout: float,
    embedding_size: int | None = None,
    outputs: int = 1,
) -> TabularMLP:
    """The model for these inputs: embeddings when the preprocessing encodes category codes."""
    mean, std = prep.scale()
    embeddings = (
        [(n, embedding_dim(n, embedding_size)) for n in prep.cardinalities]
        if prep.encoding == "embedding"
        else []
    )
    return TabularMLP(mean, std, hidden_sizes, dropout, embeddings, outputs)


def tabular_mlp(
    spec: ModelSpec, hidden_sizes: list[int], dropout: float, embedding_size: int | None = None
) -> TabularMLP:
    """The built-in factory (`training.model` unset): the MLP for the spec's inputs and outputs."""
    return build_model(
        Preprocessing.from_dict(spec.preprocessing), hidden_sizes, dropout, embedding_size, spec.n_outputs
    )
