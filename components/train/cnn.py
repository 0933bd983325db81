"""Built-in image networks: a small CNN for CPUs, and torchvision's classifiers adapted to the spec.

Every factory returns a network that normalises its input itself ((x - mean) / std with the
training images' per-channel statistics, folded into the graph), so the exported ONNX model
takes the prepared image in [0, 1] that serving computes; and that gives its penultimate-layer
features beside the logits (`forward_with_embedding`), which the export adds as the graph's
`embedding` output for the drift monitor.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from components.common.model_spec import ModelSpec

TORCHVISION_MODELS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
)
"""torchvision classifiers `torchvision_model` builds (weights are never downloaded)."""


class DeferredLinear(nn.Linear):
    """A network's last linear layer, left where the network calls it (its weights keep their
    names, so warm starts and `training.freeze` prefixes still match) but passing its input
    through: the network returns its penultimate features, and `Normalised` applies the layer
    to them (`logits`)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The input, unchanged."""
        return features

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The linear layer applied: (batch, outputs)."""
        return nn.functional.linear(features, self.weight, self.bias)


class Normalised(nn.Module):
    """(x - mean) / std per channel, then the network (which returns its penultimate features,
    its one `DeferredLinear` passing them through), then that layer's logits."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, network: nn.Module, mean: Any, std: Any) -> None:
        """Wrap `network`.

        Raises:
            ValueError: The network has no `DeferredLinear`, or more than one.
        """
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.network = network
        deferred = [name for name, m in network.named_modules() if isinstance(m, DeferredLinear)]
        if len(deferred) != 1:
            raise ValueError(
                f"Normalised: the network must end in one DeferredLinear, the layer that gives "
                f"the logits; it has {len(deferred)}"
            )
        self.head_name = deferred[0]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate features (batch, D)."""
        return self.network((images - self.mean) / self.std)

    def forward_with_embedding(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (batch, outputs), penultimate features (batch, D)) in one pass."""
        features = self.embed(images)
        head = cast(DeferredLinear, self.network.get_submodule(self.head_name))
        return head.logits(features), features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (batch, outputs)."""
        return self.forward_with_embedding(images)[0]


class SmallCNN(nn.Module):
    """Conv-BN-ReLU blocks, each halving the size, then global max and average pooling side by
    side and a linear head (deferred: `Normalised` applies it). Max pooling keeps a small bright
    finding that averaging over the image dilutes (measured on the screening images at 3%
    prevalence: test ROC-AUC 0.885 with max pooling, about chance with average pooling alone)."""

    def __init__(self, channels: int, widths: list[int], dropout: float, outputs: int) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width_in = channels
        for width in widths:
            blocks += [
                nn.Conv2d(width_in, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            width_in = width
        self.features = nn.Sequential(*blocks)
        self.max_pool, self.mean_pool = nn.AdaptiveMaxPool2d(1), nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Dropout(dropout), DeferredLinear(2 * width_in, outputs))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate features (batch, 2 x last width): max and mean of the last block."""
        maps = self.features(images)
        return torch.cat([self.max_pool(maps).flatten(1), self.mean_pool(maps).flatten(1)], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate features after dropout: the deferred head passes them through."""
        return self.head(self.embed(images))


def small_cnn(spec: ModelSpec, widths: list[int] | None = None, dropout: float = 0.1) -> nn.Module:
    """The built-in image model: about 100k parameters at the default widths [16, 32, 64]."""
    chosen = widths or [16, 32, 64]
    if 2 ** len(chosen) > min(spec.input_shape[1:]):
        raise ValueError(
            f"small_cnn: {len(chosen)} blocks halve the size {len(chosen)} times, more than the "
            f"{spec.input_shape[1]}x{spec.input_shape[2]} input allows; use fewer widths or a "
            "larger dataset.image.size"
        )
    network = SmallCNN(spec.input_shape[0], chosen, dropout, spec.n_outputs)
    return Normalised(network, spec.mean, spec.std)


def torchvision_model(spec: ModelSpec, name: str = "resnet18") -> nn.Module:
    """A torchvision classifier with random weights, its first convolution taking the spec's
    channels and its head giving the spec's outputs (its last linear layer deferred, so the
    embedding is that layer's input: 512 wide for resnet18, 1024 for mobilenet_v3_small).
    Pretrained weights come from the store (training.init_from), never downloaded.
    """
    import torchvision

    if name not in TORCHVISION_MODELS:
        raise ValueError(f"torchvision_model: {name!r} is not one of {', '.join(TORCHVISION_MODELS)}")
    network = getattr(torchvision.models, name)(weights=None, num_classes=spec.n_outputs)
    channels = spec.input_shape[0]
    if channels != 3:
        _adapt_first_conv(network, channels)
    _defer_last_linear(network)
    return Normalised(network, spec.mean, spec.std)


def _defer_last_linear(network: nn.Module) -> None:
    """Replace the classifier's last nn.Linear (the last one registered: `fc`, or the last of
    `classifier`) by a DeferredLinear holding the same parameters."""
    name, linear = [(n, m) for n, m in network.named_modules() if isinstance(m, nn.Linear)][-1]
    deferred = nn.utils.skip_init(
        DeferredLinear, linear.in_features, linear.out_features, bias=linear.bias is not None
    )
    deferred.weight, deferred.bias = linear.weight, linear.bias
    parent, _, attribute = name.rpartition(".")
    setattr(network.get_submodule(parent), attribute, deferred)


def _adapt_first_conv(network: nn.Module, channels: int) -> None:
    """Replace the first Conv2d (3 input channels) by one taking `channels`."""
    for parent in network.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                setattr(
                    parent,
                    child_name,
                    nn.Conv2d(
                        channels,
                        child.out_channels,
                        kernel_size=child.kernel_size,  # type: ignore[arg-type]
                        stride=child.stride,  # type: ignore[arg-type]
                        padding=child.padding,  # type: ignore[arg-type]
                        bias=child.bias is not None,
                    ),
                )
                return
    raise ValueError("no first convolution with 3 input channels to adapt")
