"""A minimal hand-written DDP loop, the yardstick of bench_train (run under torchrun).

Same model class, data, batch size, optimiser and world size as the train step, and nothing
else: no warmup, no clipping, no checkpoints, no validation. Rank 0 writes the per-epoch
training throughput (rows over all ranks per second) as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from components.train.model import TabularMLP  # noqa: E402


def main(data_path: str, out_path: str, epochs: int, batch_size: int) -> None:
    dist.init_process_group("gloo")
    try:
        data = np.load(data_path)
        x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
        torch.manual_seed(0)
        model = TabularMLP(data["mean"], data["std"], [64, 32], 0.1)
        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3 * dist.get_world_size())
        loss_fn = nn.BCEWithLogitsLoss()
        sampler: DistributedSampler[int] = DistributedSampler(range(len(x)), shuffle=True)  # type: ignore[arg-type]
        throughput = []
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler))
            started = time.monotonic()
            ddp.train()
            for batch in torch.split(order, batch_size):
                optimizer.zero_grad()
                loss = loss_fn(ddp(x[batch]).squeeze(1), y[batch])
                loss.backward()
                optimizer.step()
            throughput.append(len(order) * dist.get_world_size() / (time.monotonic() - started))
        if dist.get_rank() == 0:
            Path(out_path).write_text(json.dumps(throughput))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
