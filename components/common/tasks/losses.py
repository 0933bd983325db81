"""The tasks' torch losses, imported only where training runs (serving has no torch)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class BinaryCrossEntropy(nn.Module):
    """BCEWithLogitsLoss over logits of shape (batch, 1) or (batch,), positives weighted."""

    def __init__(self, positive_weight: float, device: torch.device) -> None:
        """A loss whose positive rows weigh `positive_weight` each."""
        super().__init__()
        self.inner = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight, device=device))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean weighted loss; logits are flattened to one column and computed in fp32."""
        return self.inner(logits.reshape(-1).float(), targets)


class SoftmaxCrossEntropy(nn.Module):
    """CrossEntropyLoss over logits (batch, K) and class indices, classes weighted."""

    def __init__(self, class_weights: np.ndarray, device: torch.device) -> None:
        """A loss whose rows of class k weigh `class_weights[k]` (mean over the summed weights)."""
        super().__init__()
        weight = torch.as_tensor(np.asarray(class_weights, dtype=np.float32), device=device)
        self.inner = nn.CrossEntropyLoss(weight=weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean weighted loss, computed in fp32."""
        return self.inner(logits.float(), targets)
