"""A minimal hand-written torchvision DDP loop, the yardstick of bench_train_images (run under torchrun).

`files`: a plain Dataset reading the same image files with the same decode and fit
(`image_prep.load`) and the same augmentation written out with torchvision.transforms.v2,
a DistributedSampler and a DataLoader with the same workers and batch (torchvision's
classification reference does no more); the same model class and AdamW, and nothing else: no
warmup, clipping, class weights, checkpoints or validation. `synthetic`: the same model fed
random tensors already on the GPU, the compute ceiling. On a GPU: nccl, bf16 autocast and
channels_last, like the step. Rank 0 writes, per epoch, the training throughput (images over
all ranks per second) and the share of the epoch spent waiting for the next batch, as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from components.common.modalities.image_prep import ImageInputs, load  # noqa: E402
from components.common.model_spec import ModelSpec  # noqa: E402
from components.train.cnn import small_cnn, torchvision_model  # noqa: E402


class Gamma(nn.Module):
    """x ** g, g uniform in [1 - spread, 1 + spread] (the recipe's gamma jitter)."""

    def __init__(self, spread: float) -> None:
        super().__init__()
        self.spread = spread

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.clamp(0.0, 1.0) ** (1.0 + (2 * float(torch.rand(())) - 1) * self.spread)


class Files(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(augmented image, label) per manifest row, read in a DataLoader worker."""

    def __init__(
        self, locations: list[str], labels: np.ndarray, inputs: ImageInputs, augment: dict[str, Any]
    ) -> None:
        from torchvision.transforms import v2

        self.locations, self.labels, self.inputs = locations, torch.from_numpy(labels), inputs
        steps: list[Any] = []
        if augment.get("horizontal_flip"):
            steps.append(v2.RandomHorizontalFlip())
        if augment.get("gamma"):
            steps.append(Gamma(augment["gamma"]))
        if augment.get("noise_std"):
            steps.append(v2.GaussianNoise(sigma=augment["noise_std"], clip=True))
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.transform(torch.from_numpy(load(self.locations[index], self.inputs)))
        return image, self.labels[index]


def main(job_path: str, out_path: str) -> None:
    """Train as `job_path` (JSON written by the benchmark) says; rank 0 writes `out_path`."""
    job = json.loads(Path(job_path).read_text())
    cuda = job["device"] == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
        inputs = ImageInputs.from_dict(job["inputs"])
        spec = ModelSpec.from_dict(job["spec"])
        torch.manual_seed(0)
        model = torchvision_model(spec, job["model"]) if job["model"] != "small_cnn" else small_cnn(spec)
        memory_format = torch.channels_last if cuda else torch.contiguous_format
        model = model.to(device)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        # One process (the GPU ceiling): no DDP wrapper, as the step trains one process.
        single = dist.get_world_size() == 1
        ddp = model if single else DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        optimizer = torch.optim.AdamW(model.parameters(), lr=job["learning_rate"] * dist.get_world_size())
        loss_fn = nn.BCEWithLogitsLoss()
        batch_size, epochs = job["batch_size"], job["epochs"]
        if job["mode"] == "synthetic":  # the compute ceiling: no data pipeline at all
            steps = job["images"] // (batch_size * dist.get_world_size())
            shape = (batch_size, inputs.channels, *inputs.size)
            fixed = torch.rand(shape, device=device).contiguous(memory_format=memory_format)
            labels = (torch.rand(batch_size, device=device) < 0.1).float()
            loader: Any = [(fixed, labels)] * steps
            sampler: DistributedSampler[Any] | None = None
        else:
            train = pd.read_parquet(job["train"])
            dataset = Files(
                train[inputs.image_column].astype(str).tolist(),
                train["label"].to_numpy(np.float32),
                inputs,
                job["augment"],
            )
            sampler = DistributedSampler(dataset, shuffle=True)
            workers = job["workers"]
            loader = DataLoader(
                dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=cuda
            )
        history = []
        for epoch in range(epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            if cuda:
                torch.cuda.synchronize()
            ddp.train()
            started = ready = time.monotonic()  # the whole epoch, as the step times it
            waited, seen = 0.0, 0
            for images, targets in loader:
                waited += time.monotonic() - ready
                images = images.to(device, non_blocking=cuda).contiguous(memory_format=memory_format)
                targets = targets.to(device, non_blocking=cuda)
                optimizer.zero_grad()
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    logits = ddp(images).squeeze(1)
                loss = loss_fn(logits.float(), targets)
                loss.backward()
                optimizer.step()
                seen += len(targets)
                ready = time.monotonic()
            if cuda:
                torch.cuda.synchronize()
            seconds = time.monotonic() - started
            rate = seen * dist.get_world_size() / seconds
            history.append({"samples_per_s": rate, "data_wait_share": waited / seconds})
        if dist.get_rank() == 0:
            Path(out_path).write_text(json.dumps(history))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
