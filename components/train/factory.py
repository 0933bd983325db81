"""User model code: import a `package.module:function` factory, build the model, check it early.

A factory that cannot be imported, is not callable, returns no nn.Module, gives logits of the
wrong shape (or, through an optional `forward_with_embedding`, an embedding that is not
(batch, D) or logits unlike forward's) or cannot be exported to ONNX fails here, before
training, naming the factory and the fault. Nothing downstream (DDP, checkpoints, export,
calibration, serving) knows whose model it trains.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from components.common.config import TrainingConfig
from components.common.modalities import Modality, modality_for
from components.common.model_spec import ModelSpec

MODEL_CODE = "model_code.json"
"""The train step's record of the model code (`factory_lineage`); register puts it in lineage."""


ANSI = re.compile(r"\x1b\[[0-9;]*m")
SOURCE_LINE = re.compile(r"File: (\S+:\d+) in \w+, code: (.+)")
"""torch.export's pointer to the line of the model's code it could not trace."""


class ModelFactoryError(ValueError):
    """A model or loss factory that cannot be used; the message names it and the fault."""


def factory_of(cfg: TrainingConfig, modality: Modality) -> tuple[str, dict[str, Any]]:
    """(import path, keyword arguments) of the model factory the config asks for (unset: the
    modality's built-in model)."""
    if cfg.model is None:
        return modality.default_model(cfg)
    return cfg.model.factory, dict(cfg.model.params)


def load(path: str, code_path: str | None, what: str = "training.model.factory") -> Callable[..., Any]:
    """The callable named `package.module:function`, importing from `code_path` first.

    Raises:
        ModelFactoryError: The module cannot be imported, lacks the name, or it is not callable.
    """
    module_name, _, attribute = path.partition(":")
    if code_path and Path(code_path).is_dir() and code_path not in sys.path:
        sys.path.insert(0, code_path)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to see, named
        where = f" (looked in {code_path} and the installed packages)" if code_path else ""
        raise ModelFactoryError(
            f"{what} {path!r}: cannot import {module_name!r}{where}: {type(exc).__name__}: {exc}. "
            "Put the module beside the config (or set training.code_path), or install its package"
        ) from None
    if not hasattr(module, attribute):
        raise ModelFactoryError(f"{what} {path!r}: module {module_name!r} has no {attribute!r}")
    found = getattr(module, attribute)
    if not callable(found):
        raise ModelFactoryError(
            f"{what} {path!r}: {attribute!r} is a {type(found).__name__}, not a function; name a "
            "function(spec, **params) that returns a torch.nn.Module"
        )
    return found


def build_model(cfg: TrainingConfig, spec: ModelSpec) -> nn.Module:
    """The model the config names, built for `spec` (call after seeding: weights are drawn here).

    Raises:
        ModelFactoryError: The factory fails or returns something other than an nn.Module.
    """
    path, params = factory_of(cfg, modality_for(spec.modality))
    factory = load(path, cfg.code_path)
    try:
        model = factory(spec, **params)
    except ModelFactoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code failed: say where
        raise ModelFactoryError(
            f"training.model.factory {path!r} raised {type(exc).__name__}: {exc} (params {params})"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelFactoryError(
            f"training.model.factory {path!r} returned a {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def build_loss(cfg: TrainingConfig, spec: ModelSpec) -> nn.Module | None:
    """The config's own loss (training.loss), or None for the task's."""
    if cfg.loss is None:
        return None
    loss = load(cfg.loss, cfg.code_path, "training.loss")(spec)
    if not isinstance(loss, nn.Module):
        raise ModelFactoryError(
            f"training.loss {cfg.loss!r} returned a {type(loss).__name__}, not a torch.nn.Module"
        )
    return loss


def check_model(cfg: TrainingConfig, spec: ModelSpec, example: np.ndarray, workdir: Path) -> float:
    """Build the model, run two example inputs (`example`: real ones from the training split),
    export it to ONNX; returns the seconds it took.

    Raises:
        ModelFactoryError: Naming the factory and the fault (the wrong shape, the operator the
            ONNX exporter could not handle).
    """
    import time

    from components.train.export import export_onnx

    started = time.monotonic()
    modality = modality_for(spec.modality)
    path, _ = factory_of(cfg, modality)
    model = build_model(cfg, spec).eval()
    rows = modality.example_input(spec, example)
    try:
        with torch.no_grad():
            logits = model(rows)
    except Exception as exc:  # noqa: BLE001 - the user's forward failed on real rows
        raise ModelFactoryError(
            f"training.model.factory {path!r}: the model fails on a batch of {len(rows)} rows x "
            f"{spec.n_inputs} inputs: {type(exc).__name__}: {exc}"
        ) from None
    expected = (len(rows), spec.n_outputs)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelFactoryError(
            f"training.model.factory {path!r}: a batch of {len(rows)} rows gave logits of shape {got}; "
            f"the {spec.task} task needs {expected} (batch, spec.n_outputs)"
        )
    _check_embedding(model, rows, logits, path)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        try:
            export_onnx(model, rows, Path(tmp) / "check.onnx", modality.input_name)
        except Exception as exc:  # noqa: BLE001 - the exporter's own words name the operator
            raise ModelFactoryError(
                f"training.model.factory {path!r}: torch could not export the model to ONNX, which "
                f"serving runs: {_first_lines(exc)}"
            ) from None
    return time.monotonic() - started


def _check_embedding(model: nn.Module, rows: torch.Tensor, logits: torch.Tensor, path: str) -> None:
    """A model with `forward_with_embedding` must give the forward's logits and a (batch, D)
    embedding from it: the export takes both from that method.

    Raises:
        ModelFactoryError: It fails, returns something else, or its logits differ.
    """
    from components.train.export import embedding_forward

    method = embedding_forward(model)
    if method is None:
        return  # exports the logits alone
    what = f"training.model.factory {path!r}: forward_with_embedding"
    try:
        with torch.no_grad():
            given = method(rows)
    except Exception as exc:  # noqa: BLE001 - the user's method failed on real rows
        raise ModelFactoryError(f"{what} fails on {len(rows)} rows: {type(exc).__name__}: {exc}") from None
    if not (
        isinstance(given, tuple)
        and len(given) == 2
        and all(isinstance(t, torch.Tensor) for t in given)
        and given[1].dim() == 2
        and len(given[1]) == len(rows)
    ):
        raise ModelFactoryError(
            f"{what} must return (logits, embedding), the embedding (batch, D); got "
            f"{_shapes(given)} for {len(rows)} rows"
        )
    if given[0].shape != logits.shape or not torch.allclose(given[0], logits, rtol=1e-4, atol=1e-5):
        raise ModelFactoryError(
            f"{what} gives logits other than forward's (in eval mode); the exported model's "
            "logits come from it, so they must be the same"
        )


def _shapes(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return str(tuple(value.shape))
    if isinstance(value, tuple):
        return "(" + ", ".join(_shapes(v) for v in value) + ")"
    return type(value).__name__


def _first_lines(exc: BaseException, limit: int = 600) -> str:
    """What names the fault in an exporter error (whose full text runs to pages): the innermost
    cause's first line, and the user's source line the exporter points at, when it does."""
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    texts = [ANSI.sub("", str(e)) for e in chain]
    innermost = chain[-1]
    first = next((line.strip() for line in texts[-1].splitlines() if line.strip()), "")
    message = f"{type(innermost).__name__}: {first}"
    where = next((m for text in texts for m in SOURCE_LINE.findall(text)), None)
    if where:
        message += f" (at {where[0].strip()}: {where[1].strip()})"
    return message if len(message) <= limit else message[: limit - 3] + "..."


def factory_lineage(cfg: TrainingConfig, modality: Modality) -> dict[str, Any]:
    """What lineage records of the model code: import path, parameters, source hash, version."""
    path, params = factory_of(cfg, modality)
    function = load(path, cfg.code_path)
    record: dict[str, Any] = {"factory": path, "params": params, "loss": cfg.loss}
    try:
        source = inspect.getsourcefile(function)
    except TypeError:
        source = None
    if source:
        record["source_file"] = source
        record["source_sha256"] = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    package = path.split(".", 1)[0].split(":", 1)[0]
    try:
        record["package_version"] = metadata.version(package)
    except metadata.PackageNotFoundError:
        record["package_version"] = None  # a module beside the config, not an installed package
    return record
