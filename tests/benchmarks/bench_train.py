"""Benchmark: training throughput of the train step's recipe against a minimal DDP loop.

Both run under torchrun with 2 gloo processes (CPU) on the same screening data, model
(MLP 64-32), batch size and optimiser. The step's recipe adds what a real run needs (warmup
schedule, gradient clipping, class weights, loss bookkeeping, a checkpoint per epoch, early
stopping); the ratio says what those cost. Epoch 1 is a warm-up and is left out of both;
each side runs three times, alternating, and keeps its better median (CPU timings are noisy).
`--gpu`: 1 GPU (nccl, bf16 autocast), 1,000,000 rows, batch 8192, on both sides.
Last line: `train: FIGURE samples/s; ratio R vs a minimal DDP loop`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from components.common.config import KubeloopConfig  # noqa: E402
from components.common.preprocessing import Preprocessing  # noqa: E402
from components.train.step import launch  # noqa: E402
from examples.screening.generate import generate  # noqa: E402

ROWS, EPOCHS, BATCH, NPROC = 120_000, 5, 256, 2
if "--gpu" in sys.argv:  # 1 GPU, nccl, bf16 autocast: big batches keep the GPU busy
    ROWS, EPOCHS, BATCH, NPROC = 1_000_000, 5, 8192, 1
DEVICE = "cuda" if "--gpu" in sys.argv else "cpu"
FEATURES = ["age", "breast_density", "lesion_size_mm", "margin_irregularity", "intensity_mean", "scanner"]


def main() -> None:
    frame = generate(rows=ROWS + 10_000, prevalence=0.05, scanners={"A": 0.6, "B": 0.4}, seed=1)
    train, validation = frame.iloc[:ROWS], frame.iloc[ROWS:]
    config = KubeloopConfig.model_validate(
        {
            "name": "bench",
            "dataset": {"path": "unused.csv", "label": "label", "categorical": ["scanner"]},
            "training": {
                "hidden_sizes": [64, 32],
                "epochs": EPOCHS,
                "batch_size": BATCH,
                "learning_rate": 2e-3,
                "early_stopping_patience": EPOCHS,
                "device": DEVICE,
            },
        }
    )
    schema = {"features": FEATURES, "categorical": ["scanner"], "label": "label", "positive_value": 1}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train.to_parquet(folder / "train.parquet", index=False)
        validation.to_parquet(folder / "validation.parquet", index=False)
        spec = {
            "config_json": config.to_json(),
            "schema": schema,
            "train": str(folder / "train.parquet"),
            "validation": str(folder / "validation.parquet"),
        }
        prep = Preprocessing.fit(train, FEATURES, ["scanner"])
        mean, std = prep.scale()
        np.savez(
            folder / "data.npz",
            x=prep.encode(train),
            y=train["label"].to_numpy(np.float32),
            mean=mean,
            std=std,
        )
        steps, references = [], []
        for attempt in (1, 2, 3):
            print(f"[{attempt}/3] train step recipe: {ROWS:,} rows, {EPOCHS} epochs, batch {BATCH}, x{NPROC}")
            result = launch(spec, folder, nproc=NPROC, max_restarts=0)
            (folder / "checkpoint.pt").unlink()  # the next attempt starts afresh, not resumed
            steps.append(statistics.median(h["samples_per_s"] for h in result["history"][1:]))
            print(f"[{attempt}/3] minimal DDP loop", flush=True)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    f"--nproc_per_node={NPROC}",
                    str(REPO / "tests/benchmarks/ddp_reference.py"),
                    str(folder / "data.npz"),
                    str(folder / "reference.json"),
                    str(EPOCHS),
                    str(BATCH),
                    DEVICE,
                ],
                check=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            references.append(statistics.median(json.loads((folder / "reference.json").read_text())[1:]))
        step, reference = max(steps), max(references)
    print(f"  train step recipe   {step:12,.0f} samples/s (median of epochs 2-{EPOCHS})")
    print(f"  minimal DDP loop    {reference:12,.0f} samples/s")
    print(f"train: {step:,.0f} samples/s; ratio {step / reference:.3f} vs a minimal DDP loop")


if __name__ == "__main__":
    main()
