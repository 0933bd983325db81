"""Local predictors and the gateway following the rollout in the store (`kubeloop serve`, `kubeloop loop`).

`follow` reads `deployments/<model>/seldondeployment.json`, the same object a cluster
applies, and makes the local processes match it whenever it changes (`kubeloop deploy`,
`kubeloop rollout step|promote|rollback`, from any shell). With `auto`, it also analyses the
request logs every `deployment.analysis.interval_seconds` and steps the rollout itself, as
Flagger or the operator do on a cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from components.common.config import KubeloopConfig
from components.common.store import NotFoundError, Store
from components.deploy.local_serving import LocalServing
from components.deploy.rollout_store import load, sdep_key, step


def state_key(model: str) -> str:
    """Store key of what `kubeloop serve` runs now (gateway, predictors, pids)."""
    return f"deployments/{model}/local-serving.json"


def describe(sdep: dict[str, Any]) -> str:
    """One line per deployment: who gets how much traffic, who shadows."""
    parts = []
    for p in sdep["spec"]["predictors"]:
        version = p.get("labels", {}).get("kubeloop.dev/version", "?")
        share = "shadow" if p.get("shadow") else f"{p.get('traffic', 100)}%"
        parts.append(f"{p['name']} v{version} {share}")
    return ", ".join(parts)


def follow(
    store: Store,
    config: KubeloopConfig,
    serving: LocalServing,
    stop: threading.Event,
    poll_seconds: float = 1.0,
    auto: bool = False,
    say: Callable[[str], None] = print,
) -> None:
    """Serve the model's SeldonDeployment until `stop` is set, following every change."""
    applied: dict[str, Any] | None = None
    refused: dict[str, Any] | None = None  # a deployment that failed is not retried until it changes
    waiting_said = False
    interval = config.deployment.analysis.interval_seconds
    next_analysis = time.monotonic() + interval
    while not stop.is_set():
        try:
            sdep = store.read_json(sdep_key(config.name))
        except NotFoundError:
            sdep = None
            if not waiting_said:
                say(f"waiting for a deployment of {config.name}: `kubeloop deploy --model VERSION`")
                waiting_said = True
        if sdep is not None and sdep not in (applied, refused):
            say(f"deployment: {describe(sdep)}")
            try:
                serving.apply(sdep)
            except (RuntimeError, ValueError) as exc:
                refused = sdep
                say(f"error: could not serve it, the previous routing stays: {exc}")
            else:
                applied = sdep
                store.write_json(state_key(config.name), serving.state())
        if auto and applied is not None and time.monotonic() >= next_analysis:
            next_analysis = time.monotonic() + interval
            try:
                _auto_step(store, config, say)
            except Exception as exc:  # noqa: BLE001 - serving goes on; the next interval tries again
                say(f"error: the rollout analysis failed: {type(exc).__name__}: {exc}")
        stop.wait(poll_seconds)


def _auto_step(store: Store, config: KubeloopConfig, say: Callable[[str], None]) -> None:
    try:
        rollout = load(store, config.name)
    except ValueError:
        return
    if rollout.phase != "progressing":
        return
    rollout, action, verdict = step(store, config)
    say(f"analysis: {action}: " + "; ".join(verdict.reasons))
    if action != "hold":
        say(f"  v{rollout.candidate} is {rollout.phase}, candidate traffic {rollout.weight}%")
