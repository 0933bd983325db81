"""One torchrun worker: set up the process group, run the recipe, rank 0 writes the result.

Started by the train step as `torchrun ... -m components.train.worker SPEC.json`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist

from components.common.artifacts import DatasetSchema
from components.common.config import KubeloopConfig
from components.train.recipe import setup, train


def main(spec_path: str) -> None:
    """Run the worker on a spec file written by the train step."""
    run_worker(json.loads(Path(spec_path).read_text()))


def run_worker(spec_file: dict[str, Any], on_checkpoint: Callable[[Path], Any] | None = None) -> None:
    """setup (inputs, model, loss, data) -> train -> write (rank 0) -> cleanup; the process
    group is always destroyed.

    Args:
        spec_file: config_json, schema, local parquet paths (train, validation), checkpoint and
            out file paths, optional max_steps.
        on_checkpoint: Passed to the recipe (rank 0 calls it after each checkpoint).
    """
    config = KubeloopConfig.from_json(spec_file["config_json"])
    schema = DatasetSchema.from_dict(spec_file["schema"])
    task, modality = schema.make_task(), schema.make_modality()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        use_nccl = torch.cuda.is_available() and config.training.device != "cpu"
        if use_nccl:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    try:
        frames = {name: pd.read_parquet(spec_file[name]) for name in ("train", "validation")}
        inputs = modality.fit_inputs(frames["train"], schema, config.training)
        targets = {name: task.frame_targets(frame) for name, frame in frames.items()}
        data = modality.training_batches(
            inputs,
            (frames["train"], frames["validation"]),
            (task.loss_targets(targets["train"]), task.loss_targets(targets["validation"])),
            config.training,
        )
        spec = modality.model_spec(inputs, task)
        rank = dist.get_rank() if distributed else 0
        if rank == 0:
            print(
                f"training on {len(frames['train'])} rows x {spec.n_inputs} inputs "
                f"({task.describe(targets['train'])}),"
                f" validating on {len(frames['validation'])}, {int(os.environ.get('WORLD_SIZE', '1'))}"
                " process(es)",
                flush=True,
            )
        del frames  # the batches hold what training reads
        built = setup(
            config.training,
            spec,
            data,
            task,
            init_state=Path(spec_file["init_state"]) if spec_file.get("init_state") else None,
            init_source=str(spec_file.get("init_source", "")),
            log=_log,
        )
        model, history = train(
            config.training,
            built,
            _log,
            checkpoint=Path(spec_file["checkpoint"]),
            on_checkpoint=on_checkpoint,
            max_steps=spec_file.get("max_steps"),
        )
        if rank == 0:
            out = Path(spec_file["out"])
            tmp = out.with_name(f".{out.name}.tmp")
            torch.save(
                {
                    "state_dict": model.state_dict(),
                    "history": history,
                    "preprocessing": inputs.to_dict(),
                    "spec": spec.to_dict(),
                    "world_size": int(os.environ.get("WORLD_SIZE", "1")),
                },
                tmp,
            )
            os.replace(tmp, out)
    finally:
        if distributed:
            dist.destroy_process_group()


def _log(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
