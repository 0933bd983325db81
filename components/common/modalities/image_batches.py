"""Image training batches: files streamed through DataLoader workers, never all in memory.

Each rank's DataLoader reads its DistributedSampler share: worker processes read, decode and
fit the images (`image_prep.load`) and apply the training augmentation; the loop receives
(N, C, H, W) float32 batches on the device (pinned memory, non-blocking copies and
channels_last on a GPU).

Augmentation is a function of (seed, epoch, image) alone: each training image is augmented
under a generator seeded from the three, so neither the worker that reads it nor what that
worker read before matters (nor how many workers or ranks there are). A run resumed from its
checkpoint after its workers were killed therefore sees exactly the batches an uninterrupted
run saw. The loaders draw their worker seeds from a generator of their own, never from the
global one the model's dropout uses (which the checkpoint saves and restores).

Workers start from a forkserver, never by forking the training process (see `worker_processes`).

On a GPU, a split of JPEG files is decoded there (`dataset.image.gpu_decode`, `image_gpu`): the
workers only read the bytes, and the training process decodes, fits and augments each batch
on the device, each image under the same seed as a worker would use.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from components.common.image_config import ImageAugmentation
from components.common.modalities.batches import Batch, Split, TrainingBatches, world
from components.common.modalities.image_gpu import EncodedFiles, all_jpeg, collate_encoded, decode_batch
from components.common.modalities.image_prep import ImageInputs, load

VALIDATION_BATCH = 256
"""Images per validation batch (no gradients: larger than training's)."""
PREFETCH = 4
"""Batches each DataLoader worker reads ahead (they wait in shared memory: size /dev/shm for them)."""


Key = int | tuple[int, int]
"""A manifest row, or (epoch, row) for an augmented read."""


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one image in one epoch: a hash of the three (SeedSequence), so
    neighbouring rows and epochs get unrelated draws."""
    state = np.random.SeedSequence([seed % 2**64, epoch, index]).generate_state(1, np.uint64)
    return int(state[0])


class ImageFiles(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(prepared image, target) per manifest row, read when asked (in a DataLoader worker)."""

    def __init__(
        self,
        locations: Sequence[str],
        targets: np.ndarray,
        inputs: ImageInputs,
        augment: ImageAugmentation | None = None,
        seed: int = 0,
    ) -> None:
        """Rows to read; `augment` (only for training) draws from `seed`, the epoch and the row."""
        self.locations = list(locations)
        self.targets = torch.from_numpy(np.ascontiguousarray(targets))
        self.inputs = inputs
        self.transform = augmentation(augment, inputs.size) if augment is not None else None
        self.seed = seed

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor]:
        """Row `key`, or (epoch, row): augmented as `sample_seed(seed, epoch, row)` decides."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image = torch.from_numpy(load(self.locations[index], self.inputs))
        if self.transform is not None:
            image = augment_seeded(self.transform, image, sample_seed(self.seed, epoch, index))
        return image, self.targets[index]


def augment_seeded(transform: Any, image: torch.Tensor, seed: int) -> torch.Tensor:
    """`transform(image)` drawing from generators seeded with `seed`, whose states are put back.

    torchvision draws its parameters from the global CPU generator (with 0 workers it is the
    training process's own), and noise on a GPU tensor from that device's. Seeding the CPU
    generator itself costs ~1 us; torch.manual_seed also visits every accelerator (~70 us).
    """
    devices = [image.device.index or 0] if image.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if image.is_cuda:
            torch.cuda.manual_seed(seed)
        return transform(image)


class EpochRows(Sampler[tuple[int, int]]):
    """A DistributedSampler's rows for the epoch it is set to, each as (epoch, row): the epoch
    travels with the row to the worker that reads it (persistent workers keep their own copy
    of the dataset, which the training process cannot tell the epoch)."""

    def __init__(self, rows: DistributedSampler[Any]) -> None:
        self.rows = rows

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.rows.epoch
        return ((epoch, int(row)) for row in self.rows)

    def __len__(self) -> int:
        return len(self.rows)


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


def worker_processes(augmented: bool) -> Any:
    """How DataLoader workers start: forked from a forkserver that has imported what they run.

    By the time a loader starts its workers, the training process runs threads (gloo's,
    pyarrow's allocator's, the queue feeders of the loaders already running). A fork copies
    every lock one of them held at that instant, and a worker can then wait on it forever: here
    a validation loader's worker hung in a futex right after fork in about one resumed run in
    fifteen, and its rank with it. The forkserver is a fresh single-threaded interpreter, started
    once per process by fork and exec. A worker imports the main module again (as every
    non-fork start does: a script needs its `if __name__ == "__main__"` guard); with that module,
    torch, this module and torchvision's transforms (when augmenting) imported in the server
    first, a worker forked from it starts in milliseconds. The workers end with their training
    process, however it ends (`end_with_the_training_process`).
    """
    main = getattr(sys.modules["__main__"].__spec__, "name", None)  # `python -m`: the module
    preload = [main] if main and not main.endswith("__main__") else []
    preload += [__name__, *(["torchvision.transforms.v2"] if augmented else [])]
    context = torch.multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    return context


def end_with_the_training_process(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: exit when the training process that asked for this worker
    dies, even by SIGKILL.

    torch's workers watch their parent process, which under a forkserver is the server; the
    server in turn lives while any worker does, so a killed rank would leave its workers
    waiting forever. This watches the pipe the training process holds open instead
    (`multiprocessing.parent_process`), which the kernel closes however it ends.
    """
    parent = multiprocessing.parent_process()
    if parent is None:  # not started by multiprocessing (workers=0 runs no worker)
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)  # the batches in flight have no reader left

    threading.Thread(target=watch, name="training-process-watch", daemon=True).start()


class ImageBatches(TrainingBatches):
    """Both splits as DataLoaders over the image files."""

    def __init__(
        self,
        inputs: ImageInputs,
        locations: tuple[Sequence[str], Sequence[str]],
        targets: tuple[np.ndarray, np.ndarray],
        augment: ImageAugmentation,
        workers: int,
        gpu_decode: bool = True,
    ) -> None:
        """The prepared-input spec, each split's image locations and loss targets; with
        `gpu_decode`, JPEG splits are decoded on a GPU (`image_gpu`) when training runs on one."""
        self.inputs = inputs
        self.gpu_decode = gpu_decode
        self.decode_on_device = False
        """Whether the workers hand over file bytes and the device decodes (set by `to`)."""
        self.encoded = (EncodedFiles(locations[0], targets[0]), EncodedFiles(locations[1], targets[1]))
        self.targets = targets[0]
        self.train = ImageFiles(locations[0], targets[0], inputs, augment)
        self.validation = ImageFiles(locations[1], targets[1], inputs)
        self.train_plain = ImageFiles(locations[0], targets[0], inputs)  # unaugmented, for split losses
        self.workers = workers
        self.device = torch.device("cpu")
        self.sampler: EpochRows | None = None
        self._loaders: dict[Any, DataLoader[Any]] = {}

    def to(self, device: torch.device, seed: int) -> None:
        """Shuffle with `seed` (DistributedSampler) and augment with it; batches go to `device`."""
        rank, size = world()
        self.device = device
        shuffled: DistributedSampler[Any] = DistributedSampler(
            self.train, num_replicas=size, rank=rank, shuffle=True, seed=seed
        )
        self.sampler = EpochRows(shuffled)
        self.train.seed = seed  # before the first loader: its workers copy the dataset
        self.decode_on_device = (
            self.gpu_decode
            and device.type == "cuda"
            and all(all_jpeg(files.locations) for files in self.encoded)
        )

    def rows_per_rank(self) -> int:
        """The sampler's length."""
        return len(self._sampler())

    def _sampler(self) -> EpochRows:
        if self.sampler is None:
            raise RuntimeError("ImageBatches.to(device, seed) must run before the batches are read")
        return self.sampler

    def _loader(self, key: Any, dataset: ImageFiles, batch_size: int, sampler: Any = None) -> DataLoader[Any]:
        if key not in self._loaders:
            cuda = self.device.type == "cuda"
            source: Dataset[Any] = dataset
            if self.decode_on_device:
                source = self.encoded[1] if dataset is self.validation else self.encoded[0]
            self._loaders[key] = DataLoader(
                source,
                batch_size=batch_size,
                collate_fn=collate_encoded if self.decode_on_device else None,
                sampler=sampler,
                shuffle=False,
                num_workers=self.workers,
                pin_memory=cuda,
                # The training loader's workers live across epochs (no start-up per epoch);
                # the whole-split loaders run once an epoch and let theirs go.
                persistent_workers=self.workers > 0 and sampler is not None,
                prefetch_factor=PREFETCH if self.workers > 0 else None,
                multiprocessing_context=(
                    worker_processes(self.train.transform is not None) if self.workers > 0 else None
                ),
                worker_init_fn=end_with_the_training_process if self.workers > 0 else None,
                # Worker seeds from the loader's own generator: the global one stays untouched.
                generator=torch.Generator().manual_seed(self.train.seed),
            )
        return self._loaders[key]

    def _on_device(self, loader: DataLoader[Any], transform: Any = None) -> Iterator[Batch]:
        cuda = self.device.type == "cuda"
        for batch in loader:
            if self.decode_on_device:
                images, targets = self._decoded(batch, transform)
            else:
                images, targets = batch
                images = images.to(self.device, non_blocking=cuda)
            if cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, targets.to(self.device, non_blocking=cuda)

    def _decoded(self, batch: Any, transform: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of file bytes decoded and fitted on the device, augmented image by image
        under the same seeds as in the workers."""
        blobs, targets, epochs, rows = batch
        images = decode_batch(blobs, self.inputs, self.device)
        if transform is not None:
            images = torch.stack(
                [
                    augment_seeded(transform, image, sample_seed(self.train.seed, epoch, row))
                    for image, epoch, row in zip(images, epochs, rows, strict=True)
                ]
            )
        return images, targets

    def epoch(self, epoch: int, batch_size: int) -> Iterator[Batch]:
        """This rank's shuffled, augmented batches for `epoch`."""
        sampler = self._sampler()
        sampler.rows.set_epoch(epoch)
        loader = self._loader(("train", batch_size), self.train, batch_size, sampler)
        return self._on_device(loader, self.train.transform)

    def whole(self, split: Split) -> Iterator[Batch]:
        """Every image of a split in manifest order, unaugmented."""
        dataset = self.train_plain if split == "train" else self.validation
        return self._on_device(self._loader(split, dataset, VALIDATION_BATCH))
