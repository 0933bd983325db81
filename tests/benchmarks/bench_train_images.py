"""Benchmark: image training throughput of the train step's recipe against a minimal torchvision DDP loop.

Data: the synthetic screening mammograms of examples/screening_images (two scanners: 96x64
8-bit and 80x80 16-bit PNG files), written to a temporary folder first (not timed), read from
the files every epoch on both sides. Both run under torchrun with 2 gloo processes (CPU), the
example's settings: letterboxed to 64x64 grey, flip, gamma and noise augmentation, 1 DataLoader
worker per rank, batch 64, the default small CNN, AdamW. The recipe streams the files through
`ImageBatches` and adds what a real run needs (warmup, gradient clipping, class weights, loss
bookkeeping, a checkpoint and a validation pass per epoch; validation is not timed); the
reference (ddp_image_reference.py) is the loop of torchvision's classification reference with
the same decode (`image_prep.load`) and augmentation. Epoch 1 is a warm-up and is left out of
both; each side runs three times, alternating, and keeps its better median (CPU timings are
noisy). Also printed: the share of the epoch each side spends blocked on the next batch
(`data_wait_share` of the step's history).
`--gpu`: 1 GPU (nccl), ResNet-18 at 224x224 (3 channels), bf16 autocast, channels_last, batch
256, the DataLoader workers the machine's cores allow, against the same model fed random
tensors already on the GPU (the compute ceiling).
Last line: `train-images: FIGURE samples/s; ratio R vs a minimal torchvision DDP loop` (with
`--gpu`: `... vs the same model on synthetic GPU tensors`).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from components.common.artifacts import DatasetSchema  # noqa: E402
from components.common.config import KubeloopConfig  # noqa: E402
from components.train.step import launch  # noqa: E402
from examples.screening_images.generate import write  # noqa: E402

GPU = "--gpu" in sys.argv
AUGMENT = {"horizontal_flip": True, "gamma": 0.15, "noise_std": 0.01}
if GPU:  # ResNet-18 at 224x224: 1,000 files at 3.5x the scanners' grid (quicker to write), each
    # training file listed 12 times (8,928 images an epoch, decoded every time as on the CPU)
    FILES, REPEAT, VALIDATION, EPOCHS, BATCH, NPROC, ATTEMPTS = 1_000, 12, 256, 4, 256, 1, 2
    SIZE, CHANNELS, SCALE, MODEL = 224, 3, 3.5, "resnet18"
    WORKERS = max(1, min(12, (os.cpu_count() or 2) - 2))
else:
    FILES, REPEAT, VALIDATION, EPOCHS, BATCH, NPROC, ATTEMPTS = 2_000, 1, 400, 4, 64, 2, 3
    SIZE, CHANNELS, SCALE, MODEL, WORKERS = 64, 1, 1.0, "small_cnn", 1
LEARNING_RATE = 3e-3


def config() -> KubeloopConfig:
    """The example's image and training settings at the benchmark's size."""
    model = {"factory": "components.train.cnn:torchvision_model", "params": {"name": MODEL}} if GPU else None
    return KubeloopConfig.model_validate(
        {
            "name": "bench",
            "dataset": {
                "path": "unused.csv",
                "modality": "images",
                "label": "label",
                "image": {
                    "size": [SIZE, SIZE],
                    "channels": CHANNELS,
                    "fit": "letterbox",
                    "workers": WORKERS,
                    "augment": AUGMENT,
                },
            },
            "training": {
                "model": model,
                "epochs": EPOCHS,
                "batch_size": BATCH,
                "learning_rate": LEARNING_RATE,
                "early_stopping_patience": EPOCHS,
                "class_weighting": True,
                "device": "cuda" if GPU else "cpu",
                "nproc": NPROC,
            },
        }
    )


def torchrun(script: str, *args: str) -> None:
    """Run a benchmark script under torchrun on this node."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={NPROC}"]
    subprocess.run(
        [*command, str(REPO / "tests/benchmarks" / script), *args],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def main() -> None:
    import pandas as pd
    import torch

    if GPU and not torch.cuda.is_available():
        raise SystemExit("bench_train_images --gpu needs a CUDA GPU and none is visible; drop --gpu")
    load = os.getloadavg()[0]  # before this benchmark starts anything: other work
    cfg = config()
    modality = cfg.dataset.make_modality()
    schema = DatasetSchema(
        features=["image"],
        categorical=[],
        label="label",
        positive_value=1,
        modality="images",
        modality_settings=cfg.dataset.modality_settings(),
    )
    task = schema.make_task()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"writing {FILES:,} screening images (scale {SCALE}) to {folder}", flush=True)
        manifest = write(
            folder / "images.csv",
            rows=FILES,
            prevalence=0.08,
            scanners={"A": 0.6, "B": 0.4},
            seed=7,
            scale=SCALE,
        )
        frame = modality.read(manifest)
        train = pd.concat([frame.iloc[VALIDATION:]] * REPEAT, ignore_index=True)
        validation = frame.iloc[:VALIDATION]
        train.to_parquet(folder / "train.parquet", index=False)
        validation.to_parquet(folder / "validation.parquet", index=False)
        spec = {
            "config_json": cfg.to_json(),
            "schema": schema.to_dict(),
            "train": str(folder / "train.parquet"),
            "validation": str(folder / "validation.parquet"),
        }
        inputs = modality.fit_inputs(train, schema, cfg.training)  # as the worker fits them
        job: dict[str, Any] = {
            "mode": "synthetic" if GPU else "files",
            "device": cfg.training.device,
            "model": MODEL,
            "inputs": inputs.to_dict(),
            "spec": modality.model_spec(inputs, task).to_dict(),
            "train": str(folder / "train.parquet"),
            "augment": AUGMENT,
            "workers": WORKERS,
            "images": len(train),
            "epochs": EPOCHS,
            "batch_size": BATCH,
            "learning_rate": LEARNING_RATE,
        }
        (folder / "job.json").write_text(json.dumps(job))
        baseline = "the same model on synthetic GPU tensors" if GPU else "a minimal torchvision DDP loop"
        described = f"{len(train):,} images at {SIZE}x{SIZE}, {EPOCHS} epochs, batch {BATCH}, x{NPROC}"
        steps: list[tuple[float, float]] = []
        references: list[tuple[float, float]] = []
        for attempt in range(1, ATTEMPTS + 1):
            print(f"[{attempt}/{ATTEMPTS}] train step recipe: {described}, {WORKERS} worker(s)", flush=True)
            history = launch(spec, folder, nproc=NPROC, max_restarts=0)["history"][1:]
            (folder / "checkpoint.pt").unlink()  # the next attempt starts afresh, not resumed
            steps.append(median_of(history))
            print(f"[{attempt}/{ATTEMPTS}] {baseline}", flush=True)
            torchrun("ddp_image_reference.py", str(folder / "job.json"), str(folder / "reference.json"))
            references.append(median_of(json.loads((folder / "reference.json").read_text())[1:]))
        (step, step_wait), (reference, reference_wait) = max(steps), max(references)
    print(f"  train step recipe: {step:,.0f} samples/s, data wait {step_wait:.1%} (epochs 2-{EPOCHS})")
    print(f"  {baseline}: {reference:,.0f} samples/s, data wait {reference_wait:.1%}")
    every = [[round(rate) for rate, _ in side] for side in (steps, references)]
    print(f"  every attempt: recipe {every[0]}, baseline {every[1]}")
    if load > 1.0:  # other work shared the cores: wall-clock figures swing with it
        print(f"  load average {load:.1f} on {os.cpu_count()} cores before the start: the figures are noisy")
    print(f"train-images: {step:,.0f} samples/s; ratio {step / reference:.3f} vs {baseline}")


def median_of(history: list[dict[str, float]]) -> tuple[float, float]:
    """The median samples/s over the epochs, with that median epoch's share of waiting for data."""
    ordered = sorted(history, key=lambda h: h["samples_per_s"])
    middle = ordered[len(ordered) // 2]
    return statistics.median(h["samples_per_s"] for h in history), middle["data_wait_share"]


if __name__ == "__main__":
    main()
