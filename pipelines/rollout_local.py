"""Rollouts driven from the CLI: state in the store, verdicts from the request logs.

The state (`deployments/<model>/rollout.json`) and the SeldonDeployment of each step
(`deployments/<model>/seldondeployment.json`) live in the store, so `kubeloop rollout`
can run from any shell, and the operator of the cluster mode reads the same record.
"""

from __future__ import annotations

from components.common.config import KubeloopConfig
from components.common.registry import Registry
from components.common.store import NotFoundError, Store
from components.deploy.analysis import AnalysisSettings, Verdict, analyse_canary, analyse_shadow, read_logs
from components.deploy.request_log import window_start
from components.deploy.rollout import Rollout, advance, apply_stages, start
from components.deploy.seldondeployment import ServingSettings, render_seldondeployment


def state_key(model: str) -> str:
    """Store key of a model's rollout record."""
    return f"deployments/{model}/rollout.json"


def save(store: Store, config: KubeloopConfig, rollout: Rollout) -> None:
    """Write the rollout record and the SeldonDeployment its state calls for."""
    predictors = rollout.predictors()
    if predictors:
        sdep = render_seldondeployment(
            config.name,
            config.deployment.namespace,
            config.name,
            predictors,
            ServingSettings(store_uri=store.uri),
        )
        store.write_json(f"deployments/{config.name}/seldondeployment.json", sdep)
    store.write_json(state_key(config.name), rollout.to_dict())


def load(store: Store, model: str) -> Rollout:
    """The model's rollout record; ValueError when nothing was deployed yet."""
    try:
        return Rollout.from_dict(store.read_json(state_key(model)))
    except NotFoundError:
        raise ValueError(f"{model} has no rollout yet: `kubeloop deploy --model VERSION` first") from None


def deploy(store: Store, config: KubeloopConfig, version: str, strategy: str | None = None) -> Rollout:
    """Start rolling out `version` beside the production version (or as the first one)."""
    registry = Registry(store)
    if version not in registry.versions(config.name):
        raise ValueError(f"{config.name} has no ready version {version!r}; see `kubeloop models`")
    try:
        current = load(store, config.name)
    except ValueError:
        current = None
    if current is not None and current.phase == "progressing":
        raise ValueError(
            f"v{current.candidate} is still rolling out ({current.strategy}, {current.weight}%): "
            "`kubeloop rollout promote` or `rollback` it first"
        )
    rollout = start(
        config.name,
        strategy or config.deployment.strategy,
        registry.champion(config.name),
        version,
        config.deployment.canary_steps,
    )
    save(store, config, rollout)
    apply_stages(registry, rollout)
    return rollout


def analyse(store: Store, config: KubeloopConfig, rollout: Rollout) -> Verdict:
    """The verdict on the logs since the rollout started (each side's own version only)."""
    since = window_start(rollout.started, 60)
    name = "shadow" if rollout.strategy == "shadow" else "canary"
    main = [
        r
        for r in read_logs(store, config.name, "main", since)
        if r.get("model_version") == rollout.production
    ]
    candidate = [
        r for r in read_logs(store, config.name, name, since) if r.get("model_version") == rollout.candidate
    ]
    settings = AnalysisSettings(**config.deployment.analysis.model_dump())
    if rollout.strategy == "shadow":
        return analyse_shadow(main, candidate, settings)
    return analyse_canary(main, candidate, settings)


def step(
    store: Store, config: KubeloopConfig, verdict: Verdict | None = None
) -> tuple[Rollout, str, Verdict]:
    """Advance the rollout by a verdict (the analysis' unless given) and move the stages."""
    rollout = load(store, config.name)
    if rollout.phase != "progressing":
        return rollout, "done", Verdict("hold", [f"the rollout of v{rollout.candidate} is {rollout.phase}"])
    verdict = verdict or analyse(store, config, rollout)
    rollout, action = advance(rollout, verdict)
    save(store, config, rollout)
    apply_stages(Registry(store), rollout)
    return rollout, action, verdict
