"""Training recipe: setup -> train (early stopping) -> checkpoint -> export ONNX -> parity check."""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from components.common.config import TrainingConfig
from components.common.preprocessing import Preprocessing
from components.common.scoring import labels
from components.common.step import StepContext
from components.train.model import TabularMLP

PARITY_TOLERANCE = 1e-5


def seed_everything(seed: int) -> None:
    """Same seed, same weights, same batches."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(setting: str) -> torch.device:
    """CUDA when asked for or (auto) when present, else CPU."""
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no GPU is visible; use 'auto' or 'cpu'")
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _epoch_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> float:
    model.eval()
    with torch.no_grad():
        return float(loss_fn(model(x).squeeze(1), y))


def fit(
    cfg: TrainingConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    prep: Preprocessing,
    log: Any = print,
) -> tuple[TabularMLP, list[dict[str, float]]]:
    """Train with AdamW and early stopping on validation loss; returns the best model."""
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    mean, std = prep.scale()
    model = TabularMLP(mean, std, cfg.hidden_sizes, cfg.dropout).to(device)
    positives = float(y_train.sum())
    pos_weight = (len(y_train) - positives) / max(positives, 1.0) if cfg.class_weighting else 1.0
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, device=device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    xt, yt = torch.from_numpy(x_train).to(device), torch.from_numpy(y_train).to(device)
    xv, yv = torch.from_numpy(x_val).to(device), torch.from_numpy(y_val).to(device)
    generator = torch.Generator().manual_seed(cfg.seed)
    best_loss, best_state, stale = math.inf, None, 0
    history: list[dict[str, float]] = []
    steps_per_epoch = math.ceil(len(xt) / cfg.batch_size)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        started, total = time.monotonic(), 0.0
        order = torch.randperm(len(xt), generator=generator).to(device)
        for step in range(steps_per_epoch):
            batch = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[batch]).squeeze(1), yt[batch])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        val_loss = _epoch_loss(model, xv, yv, loss_fn)
        seconds = time.monotonic() - started
        record = {
            "epoch": epoch,
            "train_loss": total / len(xt),
            "val_loss": val_loss,
            "samples_per_s": len(xt) / max(seconds, 1e-9),
        }
        history.append(record)
        log(
            f"epoch {epoch:3d}/{cfg.epochs}  steps {steps_per_epoch}  train_loss {record['train_loss']:.4f}"
            f"  val_loss {val_loss:.4f}  {record['samples_per_s']:,.0f} samples/s"
        )
        if val_loss < best_loss - 1e-6:
            best_loss, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.early_stopping_patience:
                log(f"early stop: no val_loss improvement for {stale} epochs (best {best_loss:.4f})")
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.cpu().eval(), history


def export_onnx(model: TabularMLP, n_inputs: int, path: Path) -> None:
    """ONNX with a dynamic batch dimension: input 'features' (batch, n), output 'logit' (batch, 1)."""
    example = torch.zeros(2, n_inputs, dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1)
    # The exporter's graph optimiser logs every pass at INFO; keep the step log readable.
    logging.getLogger("onnxscript").setLevel(logging.WARNING)
    logging.getLogger("onnx_ir").setLevel(logging.WARNING)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        input_names=["features"],
        output_names=["logit"],
        dynamic_shapes=({0: batch},),
        external_data=False,
        verbose=False,
    )


def parity_gap(model: TabularMLP, onnx_path: Path, x: np.ndarray) -> float:
    """Largest |torch - onnxruntime| logit difference on the given rows."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(["logit"], {"features": x})[0]
    with torch.no_grad():
        torch_out = model(torch.from_numpy(x)).numpy()
    return float(np.abs(onnx_out - torch_out).max())


def run(ctx: StepContext, splits: str) -> str:
    """The step body. Returns the store prefix holding the model files."""
    schema = ctx.store.read_json(f"{splits}/schema.json")
    frames = {}
    for name in ("train", "validation"):
        with ctx.store.local_copy(f"{splits}/splits/{name}.parquet") as path:
            frames[name] = pd.read_parquet(path)
    prep = Preprocessing.fit(frames["train"], schema["features"], schema["categorical"])
    x_train, x_val = prep.encode(frames["train"]), prep.encode(frames["validation"])
    y_train = labels(frames["train"], schema).astype(np.float32)
    y_val = labels(frames["validation"], schema).astype(np.float32)
    cfg = ctx.config.training
    print(
        f"training on {len(x_train)} rows x {x_train.shape[1]} inputs "
        f"({int(y_train.sum())} positives), validating on {len(x_val)}",
        flush=True,
    )
    model, history = fit(cfg, x_train, y_train, x_val, y_val, prep, log=lambda line: print(line, flush=True))
    with ctx.store.staged(ctx.key("model.pt")) as path:
        torch.save(
            {
                "state_dict": model.state_dict(),
                "hidden_sizes": cfg.hidden_sizes,
                "dropout": cfg.dropout,
                "preprocessing": prep.to_dict(),
            },
            path,
        )
    with ctx.store.staged(ctx.key("model.onnx")) as path:
        export_onnx(model, x_train.shape[1], path)
        gap = parity_gap(model, path, x_val[:2048])
        if gap > PARITY_TOLERANCE:  # raised inside the block, so the model is never uploaded
            raise RuntimeError(
                f"ONNX export differs from torch by {gap:.2e} (> {PARITY_TOLERANCE});"
                " the exported model would not serve what was trained"
            )
    ctx.store.write_json(ctx.key("preprocessing.json"), prep.to_dict())
    ctx.store.write_json(ctx.key("history.json"), history)
    best = min(history, key=lambda h: h["val_loss"])
    ctx.metrics.update(epochs=len(history), best_val_loss=round(best["val_loss"], 5), onnx_parity_max_abs=gap)
    return ctx.prefix
