"""Run a pipeline on this machine through kfp.local's SubprocessRunner (the embedded default)."""

from __future__ import annotations

import importlib
import secrets
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.common.config import KubeloopConfig
from components.common.step import STEPS, run_prefix
from components.common.store import LocalStore, NotFoundError, Store


def new_run_id() -> str:
    """Sortable, unique: 20261123-101500-a1b2c3."""
    return f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def materialize_dataset(config: KubeloopConfig) -> bool:
    """Create a missing local dataset with its configured generator; True when one was written."""
    dataset = config.dataset
    if "://" in dataset.path or Path(dataset.path).exists() or dataset.generator is None:
        return False
    module_name, _, function_name = dataset.generator.function.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"dataset.generator.function '{dataset.generator.function}' cannot be "
            f"imported ({exc}); use 'package.module:function'"
        ) from exc
    function(path=dataset.path, **dataset.generator.params)
    return True


@dataclass
class RunResult:
    """What a local run did: per-step status records, in DAG order."""

    run_id: str
    store_uri: str
    succeeded: bool
    steps: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def failed_step(self) -> dict[str, Any] | None:
        """The first step that did not succeed."""
        return next((s for s in self.steps if s.get("status") != "succeeded"), None)


def read_statuses(store: Store, run_id: str, steps: tuple[str, ...] = STEPS) -> list[dict[str, Any]]:
    """status.json of every step that ran, in DAG order."""
    found = []
    for step in steps:
        try:
            found.append(store.read_json(f"{run_prefix(run_id, step)}/status.json"))
        except NotFoundError:
            continue
    return found


def run_local(
    pipeline: Any, config: KubeloopConfig, store: Store, run_id: str, steps: tuple[str, ...], **extra: str
) -> RunResult:
    """Run a pipeline function under kfp.local; every step runs as its own Python subprocess.

    The pipeline gets the config, store and run id, plus its own `extra` parameters.
    """
    arguments = {"config_json": config.to_json(), "store_uri": store.uri, "run_id": run_id, **extra}
    from kfp import local

    kfp_root = store.root / "kfp-local" if isinstance(store, LocalStore) else Path(".kubeloop/kfp-local")
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(kfp_root), raise_on_error=True
    )
    error = None
    with warnings.catch_warnings():
        # kfp warns that the image name does not say "python"; locally no image is used.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner.*")
        try:
            pipeline(**arguments)
        except RuntimeError as exc:
            error = str(exc)
    found = read_statuses(store, run_id, steps)
    ok = error is None and len(found) == len(steps) and all(s["status"] == "succeeded" for s in found)
    return RunResult(run_id=run_id, store_uri=store.uri, succeeded=ok, steps=found, error=error)


def run_training(
    config: KubeloopConfig,
    store: Store,
    run_id: str,
    parent_run: str = "",
    trigger: str = "manual",
) -> RunResult:
    """Run the training DAG locally."""
    from pipelines.training import make_training_pipeline

    pipeline = make_training_pipeline(config.to_json(), store.uri, cluster=False)
    return run_local(pipeline, config, store, run_id, STEPS, parent_run=parent_run, trigger=trigger)


def run_recalibration(config: KubeloopConfig, store: Store, run_id: str, version: str) -> RunResult:
    """Run the recalibrate DAG locally for one registered version."""
    from pipelines.recalibrate import RECALIBRATE_STEPS, make_recalibrate_pipeline

    pipeline = make_recalibrate_pipeline(config.to_json(), store.uri, cluster=False)
    return run_local(pipeline, config, store, run_id, RECALIBRATE_STEPS, model_version=version)


def run_retraining(
    config: KubeloopConfig, store: Store, run_id: str, evidence: str = "", trigger: str = "drift"
) -> RunResult:
    """Run the retraining DAG locally (assemble, then the training path)."""
    from pipelines.retraining import RETRAINING_STEPS, make_retraining_pipeline

    pipeline = make_retraining_pipeline(config.to_json(), store.uri, cluster=False)
    return run_local(pipeline, config, store, run_id, RETRAINING_STEPS, evidence=evidence, trigger=trigger)
