"""The tasks' torch losses, imported only where training runs (serving has no torch)."""

from __future__ import annotations

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

