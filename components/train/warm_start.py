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

    Returns:
        (names loaded, names re-initialised because the shape differs or the source lacks them).
    """
    source = state_dict_of(saved)
    own = model.state_dict()
    loaded = [k for k, v in own.items() if k in source and tuple(source[k].shape) == tuple(v.shape)]
    fresh = [k for k in own if k not in loaded]
    model.load_state_dict({**own, **{k: source[k] for k in loaded}})
    return loaded, fresh


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
