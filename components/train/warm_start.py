"""Warm starts and fine-tuning: initial weights from an earlier model, and frozen layers."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def state_dict_of(saved: Any) -> dict[str, torch.Tensor]:
    """The weights in a saved file: a plain state dict, a kubeloop model.pt or a checkpoint.

    Raises:
        ValueError: The file holds none of these.
    """
    if isinstance(saved, dict):
        for key in ("state_dict", "model"):  # model.pt; a training checkpoint
            if isinstance(saved.get(key), dict):
                return dict(saved[key])
        if saved and all(isinstance(v, torch.Tensor) for v in saved.values()):
            return dict(saved)
    raise ValueError(
        "training.init_from holds no weights: expected a state dict, a kubeloop model.pt or a "
        "training checkpoint"
    )


def load_initial_weights(model: nn.Module, saved: Any) -> tuple[list[str], list[str]]:
    """Copy every tensor whose name and shape match; the rest keep their fresh initialisation.

    Weights saved from a bare network (torchvision's `resnet18().state_dict()`: `conv1.weight`)
    load into kubeloop's wrapped one (`network.conv1.weight`): when no name matches as is, the
    model's common prefix is tried. A first convolution trained on RGB loads into a grey one
    as the sum of its three input channels (a grey image repeated thrice gives the same
    response), and a grey one into RGB as a third of it per channel.

    Returns:
        (names loaded, names re-initialised because the shape differs or the source lacks them).
    """
    source = _aligned(state_dict_of(saved), model.state_dict())
    own = model.state_dict()
    chosen: dict[str, torch.Tensor] = {}
    for name, tensor in own.items():
        if name in source:
            adapted = _fit_channels(source[name], tensor)
            if adapted is not None:
                chosen[name] = adapted
    model.load_state_dict({**own, **chosen})
    loaded = [k for k in own if k in chosen]
    return loaded, [k for k in own if k not in chosen]


def _aligned(source: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`source` with the model's common name prefix added, if that is what makes names match."""
    if set(source) & set(own):
        return source
    prefixes = {name.split(".", 1)[0] + "." for name in own if "." in name}
    for prefix in sorted(prefixes):
        renamed = {prefix + name: tensor for name, tensor in source.items()}
        if len(set(renamed) & set(own)) >= len(source) // 2:
            return renamed
    return source


def _fit_channels(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """The source tensor shaped as the target: as is, or a convolution kernel whose input
    channels go from 3 to 1 (summed) or 1 to 3 (split); None when they cannot agree."""
    if source.shape == target.shape:
        return source
    if source.dim() == 4 and source.shape[0] == target.shape[0] and source.shape[2:] == target.shape[2:]:
        if (source.shape[1], target.shape[1]) == (3, 1):
            return source.sum(dim=1, keepdim=True)
        if (source.shape[1], target.shape[1]) == (1, 3):
            return source.repeat(1, 3, 1, 1) / 3
    return None


def set_frozen(model: nn.Module, prefixes: list[str], frozen: bool) -> list[str]:
    """Hold (or release) the parameters whose names start with any prefix; returns their names.

    Raises:
        ValueError: A prefix matches no parameter (a typo would silently train everything).
    """
    names = [name for name, _ in model.named_parameters()]
    unmatched = [p for p in prefixes if not any(n.startswith(p) for n in names)]
    if unmatched:
        raise ValueError(
            f"training.freeze {unmatched} match no parameter of the model; its parameters: "
            f"{', '.join(names[:30])}{' ...' if len(names) > 30 else ''}"
        )
    chosen = [n for n in names if any(n.startswith(p) for p in prefixes)]
    for name, parameter in model.named_parameters():
        if name in chosen:
            parameter.requires_grad_(not frozen)
    return chosen


def describe_warm_start(source: str, loaded: list[str], fresh: list[str]) -> str:
    """One log line: what came from where, and what starts fresh."""
    line = f"warm start from {source}: {len(loaded)} tensors loaded"
    if fresh:
        line += f"; re-initialised (shape differs or missing there): {', '.join(fresh)}"
    return line
