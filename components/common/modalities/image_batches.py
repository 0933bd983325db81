"""Image training batches: files streamed through DataLoader workers, never all in memory.

Each rank's DataLoader reads its DistributedSampler share: worker processes read, decode and
fit the images (`image_prep.load`) and apply the training augmentation; the loop receives
(N, C, H, W) float32 batches on the device (pinned memory, non-blocking copies and
channels_last on a GPU).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from components.common.image_config import ImageAugmentation
from components.common.modalities.batches import Batch, Split, TrainingBatches, world
from components.common.modalities.image_prep import ImageInputs, load

VALIDATION_BATCH = 256
"""Images per validation batch (no gradients: larger than training's)."""


class ImageFiles(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(prepared image, target) per manifest row, read when asked (in a DataLoader worker)."""

    def __init__(
        self,
        locations: Sequence[str],
        targets: np.ndarray,
        inputs: ImageInputs,
        augment: ImageAugmentation | None = None,
    ) -> None:
        """Rows to read; `augment` only for training."""
        self.locations = list(locations)
        self.targets = torch.from_numpy(np.ascontiguousarray(targets))
        self.inputs = inputs
        self.transform = augmentation(augment, inputs.size) if augment is not None else None

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(load(self.locations[index], self.inputs))
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def augmentation(settings: ImageAugmentation, size: tuple[int, int]) -> Any:
    """torchvision.transforms.v2 on (C, H, W) float tensors in [0, 1]; None when nothing is on."""
    from torchvision.transforms import v2

    steps: list[Any] = []
    if settings.resized_crop_scale is not None:
        steps.append(v2.RandomResizedCrop(size, scale=(settings.resized_crop_scale, 1.0), antialias=True))
    if settings.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    if settings.vertical_flip:
        steps.append(v2.RandomVerticalFlip())
    if settings.rotation_degrees:
        steps.append(v2.RandomRotation(settings.rotation_degrees))
    if settings.brightness or settings.contrast:
        steps.append(v2.ColorJitter(brightness=settings.brightness, contrast=settings.contrast))
    if settings.gamma:
        steps.append(RandomGamma(settings.gamma))
    if settings.noise_std:
        steps.append(v2.GaussianNoise(sigma=settings.noise_std, clip=True))
    return v2.Compose(steps) if steps else None


class RandomGamma(torch.nn.Module):
    """x ** g with g uniform in [1 - spread, 1 + spread]: device response curves differ."""

    def __init__(self, spread: float) -> None:
        super().__init__()
        self.spread = spread

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        gamma = 1.0 + (2 * float(torch.rand(())) - 1) * self.spread
        return image.clamp(0.0, 1.0) ** gamma


class ImageBatches(TrainingBatches):
    """Both splits as DataLoaders over the image files."""

    def __init__(
        self,
        inputs: ImageInputs,
        locations: tuple[Sequence[str], Sequence[str]],
        targets: tuple[np.ndarray, np.ndarray],
        augment: ImageAugmentation,
        workers: int,
    ) -> None:
        """The prepared-input spec, each split's image locations and loss targets."""
        self.targets = targets[0]
        self.train = ImageFiles(locations[0], targets[0], inputs, augment)
        self.validation = ImageFiles(locations[1], targets[1], inputs)
        self.train_plain = ImageFiles(locations[0], targets[0], inputs)  # unaugmented, for split losses
        self.workers = workers
        self.device = torch.device("cpu")
        self.sampler: DistributedSampler[Any] | None = None
        self._loaders: dict[Any, DataLoader[Any]] = {}

    def to(self, device: torch.device, seed: int) -> None:
        """Shuffle with `seed` (DistributedSampler); batches go to `device`."""
        rank, size = world()
        self.device = device
        self.sampler = DistributedSampler(self.train, num_replicas=size, rank=rank, shuffle=True, seed=seed)

    def rows_per_rank(self) -> int:
        """The sampler's length."""
        return len(self._sampler())

    def _sampler(self) -> DistributedSampler[Any]:
        if self.sampler is None:
            raise RuntimeError("ImageBatches.to(device, seed) must run before the batches are read")
        return self.sampler

    def _loader(self, key: Any, dataset: ImageFiles, batch_size: int, sampler: Any = None) -> DataLoader[Any]:
        if key not in self._loaders:
            cuda = self.device.type == "cuda"
            self._loaders[key] = DataLoader(
                dataset,
                batch_size=batch_size,
                sampler=sampler,
                shuffle=False,
                num_workers=self.workers,
                pin_memory=cuda,
                # The training loader's workers live across epochs (no start-up per epoch);
                # the whole-split loaders run once an epoch and let theirs go.
                persistent_workers=self.workers > 0 and sampler is not None,
                prefetch_factor=4 if self.workers > 0 else None,
            )
        return self._loaders[key]

    def _on_device(self, loader: DataLoader[Any]) -> Iterator[Batch]:
        cuda = self.device.type == "cuda"
        for images, targets in loader:
            images = images.to(self.device, non_blocking=cuda)
            if cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, targets.to(self.device, non_blocking=cuda)

    def epoch(self, epoch: int, batch_size: int) -> Iterator[Batch]:
        """This rank's shuffled, augmented batches for `epoch`."""
        sampler = self._sampler()
        sampler.set_epoch(epoch)
        return self._on_device(self._loader(("train", batch_size), self.train, batch_size, sampler))

    def whole(self, split: Split) -> Iterator[Batch]:
        """Every image of a split in manifest order, unaugmented."""
        dataset = self.train_plain if split == "train" else self.validation
        return self._on_device(self._loader(split, dataset, VALIDATION_BATCH))
