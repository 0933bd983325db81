"""The `loop` config section: how `kubeloop loop` replays traffic and compresses time on 127.0.0.1."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from components.common.config_section import Section
from components.common.monitoring_config import DURATION


class TrafficPhase(Section):
    """One phase of replayed traffic: rows from the dataset's generator with some params changed."""

    name: str
    """What the phase shows, e.g. "scanner A" or "scanner B joins"."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Generator params over dataset.generator.params (e.g. scanners: {A: 0.5, B: 0.5})."""
    rows: int = Field(1000, ge=100)
    """Rows sent in the phase's monitor window (labels follow for each)."""
    seed: int = 1
    """Generator seed: the phase's rows differ from the training data's."""


class LoopConfig(Section):
    """The closed loop on this machine: live traffic, a drift, retraining and a rollout, in minutes."""

    window: str = Field("15s", pattern=DURATION)
    """Monitor window during the loop (monitoring.window is for real traffic; the loop compresses time)."""
    late_seconds: float = Field(3.0, ge=0)
    """A window is checked this long after it ends (request logs flush every second in the loop)."""
    live: TrafficPhase = Field(default_factory=lambda: TrafficPhase(name="live traffic"))
    """Traffic like the training data's: the monitor must find no drift in it."""
    shifted: TrafficPhase = Field(default_factory=lambda: TrafficPhase(name="shifted traffic", rows=3000))
    """Traffic after the world changed: the monitor must find the drift and retrain."""
    rows_per_request: int = Field(10, ge=1)
    """Rows per request while a phase is replayed."""
    rollout_rows_per_request: int = Field(5, ge=1)
    """Rows per request during the rollout: the analysis counts requests for latency and errors,
    and labeled rows (positives are rare) for recall."""
    concurrency: int = Field(2, ge=1, le=32)
    """Parallel client connections to the gateway."""
    analysis_interval_seconds: float = Field(2.0, gt=0)
    """How often the rollout is analysed and stepped (deployment.analysis.interval_seconds in the loop)."""
    warmup_seconds: float = Field(6.0, ge=0)
    """Latency checks start this long after a candidate's first request of a step
    (deployment.analysis.warmup_seconds in the loop): a predictor started on a small machine
    answers its first requests slowly while the others keep the cores busy."""
    min_latency_increase_ms: float = Field(20.0, ge=0)
    """A latency rise smaller than this is tolerated in the loop (deployment.analysis.
    min_latency_increase_ms in the loop; 5 ms on a cluster): the predictors, the gateway, the
    traffic and the retraining share this machine's cores, and scheduling alone put 0.6% of an
    image canary's requests 7 ms past main's p99 on two cores (measured), which held the canary
    for minutes though it is not the version's latency."""
    rollout_timeout_seconds: float = Field(180.0, gt=0)
    """Longest wait for the rollout to be promoted or rolled back."""
    retraining_timeout_seconds: float = Field(300.0, gt=0)
    """Longest wait for the retraining run the monitor starts."""
    bad_candidate: list[str] = Field(
        default_factory=lambda: [
            "training.learning_rate=0.000002",
            "training.epochs=1",
            "training.smoke_test=false",
        ]
    )
    """Overrides of the retraining run in `scenario=bad_candidate`: what makes its candidate worse (by
    default a rushed run: one epoch at a learning rate 1000x too small, the smoke test, which would
    stop it, switched off). Its failed gate is then overridden (evaluation.force_promote, with the
    reason recorded), so the rollout analysis is what has to stop it."""
