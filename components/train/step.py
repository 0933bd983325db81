"""Training step: launch the recipe under torchrun, then export ONNX and check its parity."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from components.common.artifacts import DatasetSchema, split_key
from components.common.modalities import INPUTS_FILE
from components.common.model_spec import ModelSpec
from components.common.plots import png
from components.common.registry import Registry
from components.common.step import StepContext
from components.train.export import PARITY_ROWS, check_parity, export_onnx, require_parity
from components.train.factory import MODEL_CODE, build_model, check_model, factory_lineage, factory_of
from components.train.smoke import run_smoke_test


def loss_curve_png(history: list[dict[str, float]]) -> bytes:
    """Train and validation loss per epoch, with the best epoch marked."""

    def draw(ax: Any) -> None:
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
        ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
        best = min(history, key=lambda h: h["val_loss"])
        ax.axvline(best["epoch"], color="grey", linestyle="--", label=f"best (epoch {int(best['epoch'])})")
        ax.set(xlabel="epoch", ylabel="loss (cross-entropy, as trained)", title="Training")
        ax.legend()

    return png(draw, size=(5.5, 3.6))


def launch(spec: dict[str, Any], workdir: Path, nproc: int, max_restarts: int) -> dict[str, Any]:
    """Run the recipe under torchrun (standalone rendezvous on this node) and load rank 0's result."""
    spec = {**spec, "checkpoint": str(workdir / "checkpoint.pt"), "out": str(workdir / "result.pt")}
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        f"--max_restarts={max_restarts}",
        "-m",
        "components.train.worker",
        str(spec_path),
    ]
    # A fresh store per restart: with the agent's store shared (the default), restarted workers
    # can read the dead generation's addresses and fail to connect (pytorch/pytorch#135712).
    env = {**os.environ, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    code = subprocess.run(command, check=False, env=env).returncode
    if code != 0:
        raise RuntimeError(
            f"torchrun exited with {code} after {max_restarts} restart(s); the worker log "
            "above names the failing rank"
        )
    return dict(torch.load(spec["out"], weights_only=False))


def job_spec(
    ctx: StepContext, splits: str, schema: DatasetSchema, init: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What every PyTorchJob pod reads from the store: config, schema and where files live."""
    return {
        "config_json": ctx.config.to_json(),
        "schema": schema.to_dict(),
        "train_key": split_key(splits, "train"),
        "validation_key": split_key(splits, "validation"),
        "checkpoint_key": ctx.key("job/checkpoint.pt"),
        "result_key": ctx.key("job/result.pt"),
        **({"init_key": init["key"], "init_source": init["source"]} if init else {}),
    }


def resolve_init(ctx: StepContext, workdir: Path) -> tuple[dict[str, Any] | None, Path | None]:
    """training.init_from as (lineage record, local copy of the weights), or (None, None).

    A registered model's `production` is read now, so lineage names the version it was.

    Raises:
        ValueError: The model has no such version, or the key is not in the store.
    """
    init = ctx.config.training.init_from
    if init is None:
        return None, None
    if init.model is not None:
        registry = Registry(ctx.store)
        version = registry.champion(init.model) if init.version == "production" else str(init.version)
        if version is None or version not in registry.versions(init.model):
            known = ", ".join(registry.versions(init.model)) or "none"
            wanted = "production version" if version is None else f"version {version}"
            raise ValueError(
                f"training.init_from: {init.model} has no {wanted} to start from (versions: {known}); "
                "train one first or name another"
            )
        key = f"{registry.version_prefix(init.model, version)}/model.pt"
        record: dict[str, Any] = {"model": init.model, "version": version, "key": key}
        source = f"{init.model} v{version}"
    else:
        key = str(init.uri)
        record, source = {"uri": key, "key": key}, key
    local = workdir / "init.pt"
    if Path(key).is_file():
        local.write_bytes(Path(key).read_bytes())
    elif ctx.store.exists(key):
        ctx.store.download_file(key, local)
    else:
        raise ValueError(
            f"training.init_from: {key} is neither in the store ({ctx.store.uri}) nor a local file"
        )
    record["sha256"] = hashlib.sha256(local.read_bytes()).hexdigest()
    record["source"] = source
    return record, local


def train_on_pytorchjob(
    ctx: StepContext, splits: str, schema: DatasetSchema, workdir: Path, init: dict[str, Any] | None = None
) -> dict[str, Any]:
    """training.nodes > 1: run the workers as a PyTorchJob and load rank 0's result."""
    from components.common.images import training_image
    from components.train.pytorchjob import render_pytorchjob, run_pytorchjob

    namespace_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    if not ctx.store.uri.startswith("s3://") or not namespace_file.exists():
        raise RuntimeError(
            f"training.nodes={ctx.config.training.nodes} runs a Kubeflow PyTorchJob, which needs a "
            "cluster and an s3:// store that every pod can reach; on one machine use nodes: 1 "
            "and training.nproc processes"
        )
    spec = job_spec(ctx, splits, schema, init)
    ctx.store.write_json(ctx.key("job/spec.json"), spec)
    job = render_pytorchjob(
        ctx.config.training,
        run_id=ctx.run_id,
        namespace=namespace_file.read_text().strip(),
        image=training_image(ctx.config.training.resources.gpus),
        store_uri=ctx.store.uri,
        spec_key=ctx.key("job/spec.json"),
    )
    run_pytorchjob(job, log=_print)
    path = ctx.store.download_file(spec["result_key"], workdir / "result.pt")
    return dict(torch.load(path, weights_only=False))


def _print(line: str) -> None:
    print(line, flush=True)


def run(ctx: StepContext, splits: str) -> str:
    """The step body. Returns the store prefix holding the model files."""
    schema = DatasetSchema.read(ctx.store, splits)
    cfg = ctx.config.training
    with tempfile.TemporaryDirectory(prefix="kubeloop-train-") as tmp:
        workdir = Path(tmp)
        paths = {
            name: str(ctx.store.download_file(split_key(splits, name), workdir / f"{name}.parquet"))
            for name in ("train", "validation")
        }
        train_frame = pd.read_parquet(paths["train"])
        task, modality = schema.make_task(), schema.make_modality()
        inputs = modality.fit_inputs(train_frame, schema, cfg)
        init, init_state = resolve_init(ctx, workdir)  # a missing source fails before any training
        spec = modality.model_spec(inputs, task)
        seconds = check_model(cfg, spec, modality.arrays(inputs, train_frame.head(2)), workdir)
        _print(
            f"model {factory_of(cfg, modality)[0]}: builds, gives logits (batch, {spec.n_outputs}), "
            f"exports to ONNX ({seconds:.1f} s)"
        )
        if cfg.smoke_test:
            frames = {"train": train_frame, "validation": pd.read_parquet(paths["validation"])}
            ctx.metrics.update(run_smoke_test(cfg, frames["train"], frames["validation"], schema, _print))
            del frames
        del train_frame
        if cfg.nodes > 1:
            result = train_on_pytorchjob(ctx, splits, schema, workdir, init)
        else:
            warm = {"init_state": str(init_state), "init_source": init["source"]} if init else {}
            result = launch(
                {"config_json": ctx.config.to_json(), "schema": schema.to_dict(), **paths, **warm},
                workdir,
                cfg.nproc,
                cfg.max_restarts,
            )
        spec = ModelSpec.from_dict(result["spec"])
        inputs = modality.load_inputs(spec.preprocessing)
        model = build_model(cfg, spec)
        model.load_state_dict(result["state_dict"])
        model.eval()
        # Parity runs on validation inputs as serving gets them (images: decoded from the files).
        x_val = modality.arrays(inputs, pd.read_parquet(paths["validation"]).head(PARITY_ROWS))
    history = result["history"]
    with ctx.store.staged(ctx.key("model.pt")) as path:
        torch.save(
            {
                "state_dict": model.state_dict(),
                "factory": factory_of(cfg, modality),
                "spec": spec.to_dict(),
                "hidden_sizes": cfg.hidden_sizes,
                "dropout": cfg.dropout,
                "embedding_size": cfg.embedding_size,
                "preprocessing": inputs.to_dict(),
            },
            path,
        )
    with ctx.store.staged(ctx.key("model.onnx")) as path:
        outputs = export_onnx(model, modality.example_input(spec), path, modality.input_name)
        # Raised inside the block, so a model that fails parity is never uploaded.
        parity = check_parity(model, path, x_val, task, modality.input_name)
        require_parity(parity, path)
    if outputs.embedding_dim is None:
        _print("the model has no forward_with_embedding: model.onnx gives the logits alone")
    ctx.store.write_json(ctx.key(INPUTS_FILE), inputs.to_dict())
    ctx.store.write_json(
        ctx.key(MODEL_CODE),
        {**factory_lineage(cfg, modality), "init_from": init, "outputs": outputs.to_dict()},
    )
    ctx.store.write_json(ctx.key("history.json"), history)
    ctx.store.write_bytes(ctx.key("loss_curve.png"), loss_curve_png(history))
    best = min(history, key=lambda h: h["val_loss"])
    ctx.metrics.update(
        epochs=len(history),
        best_epoch=int(best["epoch"]),
        best_val_loss=round(best["val_loss"], 5),
        final_train_loss=round(history[-1]["train_loss"], 5),
        world_size=int(result["world_size"]),
        samples_per_s=round(float(np.mean([h["samples_per_s"] for h in history])), 1),
        data_wait_share=round(float(np.mean([h.get("data_wait_share", 0.0) for h in history])), 3),
        onnx_parity_ratio=round(parity.gap, 4),
        onnx_embedding_dim=outputs.embedding_dim or 0,
    )
    return ctx.prefix
