"""A minimal hand-written DDP loop, the yardstick of bench_train (run under torchrun).

Same model class, data, batch size, optimiser and world size as the train step, and nothing
else: no warmup, no clipping, no checkpoints, no validation (on a GPU: nccl and bf16 autocast,
like the step). Rank 0 writes the per-epoch
training throughput (rows over all ranks per second) as JSON.
"""

from __future__ import annotations

import json
import os
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


def main(data_path: str, out_path: str, epochs: int, batch_size: int, device_name: str = "cpu") -> None:
    cuda = device_name == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
        data = np.load(data_path)
        x, y = torch.from_numpy(data["x"]).to(device), torch.from_numpy(data["y"]).to(device)
        torch.manual_seed(0)
        model = TabularMLP(data["mean"], data["std"], [64, 32], 0.1).to(device)
        ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3 * dist.get_world_size())
        loss_fn = nn.BCEWithLogitsLoss()
        sampler: DistributedSampler[int] = DistributedSampler(range(len(x)), shuffle=True)  # type: ignore[arg-type]
        throughput = []
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            if cuda:
                torch.cuda.synchronize()
            started = time.monotonic()  # the whole epoch, as the step times it
            order = torch.tensor(list(sampler), device=device)
            ddp.train()
            for batch in torch.split(order, batch_size):
                optimizer.zero_grad()
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    logits = ddp(x[batch]).squeeze(1)
                loss = loss_fn(logits.float(), y[batch])
                loss.backward()
                optimizer.step()
            if cuda:
                torch.cuda.synchronize()
            throughput.append(len(order) * dist.get_world_size() / (time.monotonic() - started))
        if dist.get_rank() == 0:
            Path(out_path).write_text(json.dumps(throughput))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
