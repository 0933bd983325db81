"""The rollout state machine: which predictors serve at each step, and what a verdict does.

Strategies: `shadow` (mirrored, answers nobody; promoted when it agrees), `canary` (weighted
steps), `replace` (at once) and `shadow-canary`: a shadow first, then, once it agrees, the
canary's steps, as Flagger mirrors traffic before it shifts any. Its steps start with a 0,
the shadow step.

Pure: the state is a small JSON record (kept at `deployments/<model>/rollout.json`); the CLI
in local mode and the operator on a cluster both call `advance` with the analysis verdict
and then render the SeldonDeployment of the new state and move the registry stages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from components.common.registry import Registry, Stage
from components.deploy.analysis import Verdict
from components.deploy.request_log import now_iso
from components.deploy.seldondeployment import Predictor, rollout_predictors

Phase = Literal["progressing", "promoted", "rolled_back"]
STRATEGIES = ("shadow", "canary", "replace", "shadow-canary")
SHADOW_STEP = 0
"""The weight of shadow-canary's first step: the candidate is mirrored and answers nobody."""


@dataclass(frozen=True)
class Rollout:
    """One candidate version on its way to production."""

    model: str
    strategy: str
    production: str | None
    candidate: str
    steps: tuple[int, ...] = (10, 50, 100)
    step: int = 0
    phase: Phase = "progressing"
    started: str = field(default_factory=now_iso)
    history: tuple[dict[str, Any], ...] = ()

    @property
    def shadowing(self) -> bool:
        """Whether the candidate runs as a shadow now (shadow, or shadow-canary's first step)."""
        if self.phase != "progressing":
            return False
        return self.strategy == "shadow" or (self.strategy == "shadow-canary" and self.step == 0)

    @property
    def weight(self) -> int:
        """The candidate's traffic share now (a shadow's is 0: it answers nobody)."""
        if self.phase == "promoted":
            return 100
        if self.phase == "rolled_back" or self.shadowing:
            return 0
        if self.strategy == "replace" or self.production is None:
            return 100
        return self.steps[self.step]

    @property
    def step_started(self) -> str:
        """When the current step began (the last start or weight change): its traffic is judged."""
        moves = [h["time"] for h in self.history if h["action"] in ("start", "step")]
        return moves[-1] if moves else self.started

    def predictors(self) -> list[Predictor]:
        """The predictors of this state, for render_seldondeployment."""
        if self.phase == "promoted":
            return [Predictor("main", self.candidate)]
        if self.phase == "rolled_back":
            return [Predictor("main", self.production)] if self.production else []
        if self.strategy == "shadow-canary":
            kind = "shadow" if self.shadowing else "canary"
            return rollout_predictors(kind, self.production, self.candidate, self.weight)
        return rollout_predictors(self.strategy, self.production, self.candidate, self.weight)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "steps": list(self.steps), "history": list(self.history)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rollout:
        """Inverse of to_dict."""
        return cls(**{**data, "steps": tuple(data["steps"]), "history": tuple(data["history"])})


def start(
    model: str,
    strategy: str,
    production: str | None,
    candidate: str,
    steps: list[int],
    now: datetime | None = None,
) -> Rollout:
    """A new rollout; with nothing in production yet the candidate goes straight to main.

    `steps` are the canary's weights; shadow-canary puts its shadow step (0) before them.
    `now` (timezone-aware) stamps it instead of the clock: a simulation runs on its own time.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    if production == candidate:
        raise ValueError(f"version {candidate} is already in production; register a new one to roll out")
    weights = tuple(steps)
    if strategy == "shadow-canary" and weights[:1] != (SHADOW_STEP,):
        weights = (SHADOW_STEP, *weights)
    rollout = Rollout(model, strategy, production, candidate, weights, started=_stamp(now))
    if production is None or strategy == "replace":
        return _record(
            replace(rollout, phase="promoted"),
            "promote",
            "nothing to compare with" if production is None else "replace strategy",
            now,
        )
    return _record(rollout, "start", f"{strategy} of v{candidate} beside v{production}", now)


def _stamp(now: datetime | None) -> str:
    """`now` as now_iso writes the clock (milliseconds, UTC offset); the clock without one."""
    return now_iso() if now is None else now.isoformat(timespec="milliseconds")


def _record(rollout: Rollout, action: str, reason: str, now: datetime | None = None) -> Rollout:
    entry = {"time": _stamp(now), "action": action, "weight": rollout.weight, "reason": reason}
    return replace(rollout, history=(*rollout.history, entry))


def advance(rollout: Rollout, verdict: Verdict, now: datetime | None = None) -> tuple[Rollout, str]:
    """Apply an analysis verdict: (new state, what happened: hold, step, promote or rollback),
    stamped `now` (default the clock)."""
    if rollout.phase != "progressing":
        return rollout, "done"
    reason = "; ".join(verdict.reasons)
    if verdict.decision == "hold":
        if rollout.history and rollout.history[-1]["action"] == "hold":
            # One entry per run of holds (an automatic rollout analyses every interval).
            held = int(rollout.history[-1].get("count", 1)) + 1
            rollout = replace(rollout, history=rollout.history[:-1])
            moved = _record(rollout, "hold", reason, now)
            return replace(moved, history=(*moved.history[:-1], {**moved.history[-1], "count": held})), "hold"
        return _record(rollout, "hold", reason, now), "hold"
    if verdict.decision == "rollback":
        return _record(replace(rollout, phase="rolled_back"), "rollback", reason, now), "rollback"
    last = (
        rollout.strategy == "shadow"
        or rollout.step + 1 >= len(rollout.steps)
        or rollout.steps[rollout.step + 1] >= 100
    )
    if last:
        return _record(replace(rollout, phase="promoted"), "promote", reason, now), "promote"
    moved = replace(rollout, step=rollout.step + 1)
    came_from = "shadow agreed, " if rollout.shadowing else ""
    return _record(moved, "step", f"{came_from}canary to {moved.weight}%: {reason}", now), "step"


def apply_stages(registry: Registry, rollout: Rollout) -> None:
    """Make the registry's stages say what the rollout state says."""
    reason = rollout.history[-1]["reason"] if rollout.history else ""
    if rollout.phase == "promoted":
        registry.set_stage(rollout.model, rollout.candidate, "production", reason=reason)
    elif rollout.phase == "rolled_back":
        registry.set_stage(rollout.model, rollout.candidate, "archived", reason=f"rolled back: {reason}")
    else:
        stage: Stage = "shadow" if rollout.shadowing else "canary"
        if registry.stage_of(rollout.model, rollout.candidate) != stage:
            registry.set_stage(rollout.model, rollout.candidate, stage, reason=reason)
