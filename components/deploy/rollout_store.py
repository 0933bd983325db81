"""Rollouts kept in the store: state, the SeldonDeployment of each step, verdicts from the request logs.

The state (`deployments/<model>/rollout.json`) and the SeldonDeployment of each step
(`deployments/<model>/seldondeployment.json`) live in the store, so `kubeloop rollout`
can run from any shell, and the operator of the cluster mode reads the same record.

Several writers meet here (`kubeloop serve --auto` stepping on its interval, a person
running `kubeloop rollout rollback`), so every change is a compare-and-swap on the record,
decided again on the state that won when another writer got there first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from components.common.artifacts import DatasetSchema, schema_key, version_prefix
from components.common.config import KubeloopConfig
from components.common.labels import read_labels
from components.common.registry import Registry
from components.common.store import ConflictError, NotFoundError, Store
from components.common.tasks import Task, default_task
from components.deploy.analysis import AnalysisSettings, Verdict, read_logs
from components.deploy.judge import Evidence, judge
from components.deploy.request_log import window_start
from components.deploy.rollout import Rollout, advance, apply_stages, start
from components.deploy.seldondeployment import ServingSettings, render_seldondeployment

ATTEMPTS = 20


def state_key(model: str) -> str:
    """Store key of a model's rollout record."""
    return f"deployments/{model}/rollout.json"


def sdep_key(model: str) -> str:
    """Store key of the SeldonDeployment of the rollout's current state."""
    return f"deployments/{model}/seldondeployment.json"


def _read(store: Store, model: str) -> tuple[Rollout | None, str | None]:
    try:
        data, tag = store.read_versioned(state_key(model))
    except NotFoundError:
        return None, None
    return Rollout.from_dict(json.loads(data)), tag


def render(store: Store, config: KubeloopConfig, rollout: Rollout) -> dict[str, Any] | None:
    """The SeldonDeployment a rollout state calls for (None when nothing serves)."""
    predictors = rollout.predictors()
    if not predictors:
        return None
    settings = ServingSettings.from_config(store.uri, config.deployment.serving)
    namespace = config.deployment.namespace
    return render_seldondeployment(config.name, namespace, config.name, predictors, settings)


def publish(store: Store, config: KubeloopConfig) -> None:
    """Write the SeldonDeployment of the current state with `config`'s serving settings; again
    if the state moved meanwhile, so a slower writer never leaves an older step's deployment
    behind a newer record."""
    for _ in range(ATTEMPTS):
        rollout, tag = _read(store, config.name)
        if rollout is None:
            return
        sdep = render(store, config, rollout)
        if sdep is not None:
            store.write_json(sdep_key(config.name), sdep)
        if _read(store, config.name)[1] == tag:
            return
    raise ConflictError(f"{state_key(config.name)} kept changing while its deployment was written")


def commit(
    store: Store, config: KubeloopConfig, decide: Callable[[Rollout | None], Rollout | None]
) -> Rollout | None:
    """Apply `decide` to the current record and swap it in; decide again on a conflict.

    `decide` returns the new state, or None to leave the record alone.
    """
    for attempt in range(ATTEMPTS):
        current, tag = _read(store, config.name)
        new = decide(current)
        if new is None:
            return current
        data = json.dumps(new.to_dict(), indent=2).encode()
        try:
            store.write_if(state_key(config.name), data, tag)
        except ConflictError:
            time.sleep(min(0.01 * 2**attempt, 0.5))
            continue
        publish(store, config)
        apply_stages(Registry(store), new)
        return new
    raise ConflictError(f"{state_key(config.name)}: gave up after {ATTEMPTS} conflicting updates")


def serve_production(store: Store, config: KubeloopConfig, version: str) -> Rollout:
    """Serve `version`, already in production, with `config`'s serving settings: a record that
    makes it main when there is none (a run with auto_deploy off), and its SeldonDeployment
    written again (the store may have been copied, and the model's URI names the store)."""

    def main_only(current: Rollout | None) -> Rollout | None:
        if current is None:
            deployment = config.deployment
            return start(config.name, deployment.strategy, None, version, deployment.canary_steps)
        if current.phase == "progressing":
            raise ValueError(
                f"v{current.candidate} is still rolling out ({current.strategy}, {current.weight}%): "
                "`kubeloop rollout promote` or `rollback` it first"
            )
        serving = current.candidate if current.phase == "promoted" else current.production
        if serving != version:
            raise ValueError(
                f"the rollout record serves v{serving}, the registry has v{version} in "
                "production: `kubeloop deploy --model VERSION` to serve the one you mean"
            )
        return None

    existing, _ = _read(store, config.name)
    rollout = commit(store, config, main_only)  # publishes a record it writes
    assert rollout is not None  # main_only always leaves a state
    if existing is not None:  # left alone: its deployment again, with these settings
        publish(store, config)
    return rollout


def load(store: Store, model: str) -> Rollout:
    """The model's rollout record; ValueError when nothing was deployed yet."""
    rollout, _ = _read(store, model)
    if rollout is None:
        raise ValueError(f"{model} has no rollout yet: `kubeloop deploy --model VERSION` first")
    return rollout


def deploy(store: Store, config: KubeloopConfig, version: str, strategy: str | None = None) -> Rollout:
    """Start rolling out `version` beside the production version (or as the first one)."""
    registry = Registry(store)
    if version not in registry.versions(config.name):
        raise ValueError(f"{config.name} has no ready version {version!r}; see `kubeloop models`")

    def begin(current: Rollout | None) -> Rollout:
        if current is not None and current.phase == "progressing":
            raise ValueError(
                f"v{current.candidate} is still rolling out ({current.strategy}, {current.weight}%): "
                "`kubeloop rollout promote` or `rollback` it first"
            )
        return start(
            config.name,
            strategy or config.deployment.strategy,
            registry.champion(config.name),
            version,
            config.deployment.canary_steps,
        )

    rollout = commit(store, config, begin)
    assert rollout is not None  # begin always returns a state
    return rollout


def analyse(store: Store, config: KubeloopConfig, rollout: Rollout) -> Verdict:
    """The verdict on the logs of the current step, with the config's thresholds."""
    return analyse_logs(store, config.name, rollout, config.deployment.analysis)


def analyse_logs(
    store: Store, model: str, rollout: Rollout, settings: AnalysisSettings, now: datetime | None = None
) -> Verdict:
    """The verdict on the rollout's logs and labels (judge.py), each side's own version only.

    Guardrails judge the current step's requests, as Flagger does per weight; quality judges
    every labeled row since the rollout started, paired where the candidate shadowed main.
    """
    since = window_start(rollout.started, 60)

    def rows(predictor: str) -> list[dict[str, Any]]:
        return read_logs(store, model, predictor, since)

    task = version_task(store, model, rollout.candidate)
    return judge(
        rollout,
        rows("main"),
        rows("shadow") + rows("canary"),
        labels_by_row(store, model, task),
        settings,
        now or datetime.now(UTC),
        task,
        version_evidence(store, model, rollout.candidate, task, settings.quality_metric),
    )


def version_evidence(store: Store, model: str, version: str, task: Task, metric: str) -> Evidence:
    """What a version's registration says about it: its validation answers (predictions.parquet),
    the prevalence and quality of its evaluation, and whether the monitor's drift evidence made
    it (lineage trigger `drift`: main drifted)."""
    prefix = version_prefix(model, version)
    reference = prevalence = expected = None
    if store.exists(f"{prefix}/predictions.parquet"):
        with store.local_copy(f"{prefix}/predictions.parquet") as path:
            frame = pd.read_parquet(path)
        validation = frame[frame["split"] == "validation"]
        if all(name in validation for name in task.answer_names) and len(validation):
            reference = validation[list(task.answer_names)].to_numpy(np.float64)
        if "label" in frame and len(validation):
            labels = validation["label"].to_numpy()
            prevalence = task.labeled_positives(labels) / len(labels) or None
    metrics_key = f"{prefix}/metrics.json"
    if store.exists(metrics_key):
        value = store.read_json(metrics_key).get(metric)  # the test split's, as evaluate measured
        expected = float(value) if isinstance(value, int | float) else None
    lineage_key = f"{prefix}/lineage.json"
    trigger = store.read_json(lineage_key).get("trigger") if store.exists(lineage_key) else None
    return Evidence(reference, trigger == "drift", prevalence, expected)


def version_task(store: Store, model: str, version: str) -> Task:
    """The task a registered version serves (schema.json), its class of interest the one its
    operating point (calibration.json) thresholds; a version without a schema serves one
    probability per row."""
    prefix = version_prefix(model, version)
    versioned = store.exists(schema_key(prefix))
    task = DatasetSchema.read(store, prefix).make_task() if versioned else default_task()
    calibration = f"{prefix}/calibration.json"
    point = store.read_json(calibration).get("operating_point") if store.exists(calibration) else None
    return task.for_point(point or {})


def labels_by_row(store: Store, model: str, task: Task | None = None) -> dict[tuple[str, int], int]:
    """(request id, row) -> class index (`Task.targets`) of every labeled served row; files that
    do not parse, missing labels and labels outside the task's classes are left out."""
    labels, _ = read_labels(store, model)
    labels = labels[labels["label"].notna()]
    targets = (task or default_task()).targets(labels["label"])
    return {
        (str(rid), int(row)): int(target)
        for rid, row, target in zip(labels["request_id"], labels["row"], targets, strict=True)
        if target >= 0
    }


def step(
    store: Store, config: KubeloopConfig, verdict: Verdict | None = None
) -> tuple[Rollout, str, Verdict]:
    """Advance the rollout by a verdict (the analysis' unless given) and move the stages."""
    outcome: dict[str, Any] = {}

    def decide(current: Rollout | None) -> Rollout | None:
        if current is None:
            raise ValueError(f"{config.name} has no rollout yet: `kubeloop deploy --model VERSION` first")
        if current.phase != "progressing":
            reason = f"the rollout of v{current.candidate} is {current.phase}"
            outcome.update(action="done", verdict=Verdict("hold", [reason]), rollout=current)
            return None
        judged = verdict or analyse(store, config, current)
        moved, action = advance(current, judged)
        outcome.update(action=action, verdict=judged, rollout=moved)
        return moved

    commit(store, config, decide)
    return outcome["rollout"], outcome["action"], outcome["verdict"]
