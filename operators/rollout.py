"""ModelRollout reconcile, pure: from the resource's spec and status to the next status.

The status is the rollout's state (the same `Rollout` record the local mode keeps in the
store), so `kubectl get modelrollouts` shows it and a restarted operator resumes from it. The
decision functions are the deploy component's: `start`, `advance` and the log analysis.
Strategy and steps are fixed when a rollout starts; thresholds and the interval are read
from the spec at every analysis, so they can be tuned while it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from components.common.rollout_config import RolloutAnalysis
from components.deploy.analysis import Verdict
from components.deploy.rollout import STRATEGIES, Rollout, advance, start
from operators.crds import ANALYSIS_DURATIONS, ANALYSIS_FIELDS
from operators.spec_schema import section_values

PHASES = {"progressing": "Progressing", "promoted": "Promoted", "rolled_back": "RolledBack"}
HISTORY_LIMIT = 100
"""Status keeps the newest entries; holds in a row are already one entry."""
Event = tuple[str, str, str]
"""(Normal or Warning, reason, message): a Kubernetes Event on the resource."""


class SpecError(ValueError):
    """The spec cannot work as written; retrying will not help until the user changes it."""


@dataclass(frozen=True)
class RolloutSpec:
    """A ModelRollout's spec, checked."""

    model: str
    seldon_deployment: str
    candidate: str
    strategy: str = "canary"
    steps: tuple[int, ...] = (10, 50, 100)
    analysis: RolloutAnalysis = field(default_factory=RolloutAnalysis)
    interval_s: int = 60
    """analysis.interval_seconds, in whole seconds."""
    paused: bool = False
    store: str | None = None


def parse_spec(spec: Mapping[str, Any]) -> RolloutSpec:
    """Check a spec beyond what the CRD schema can say.

    Raises:
        SpecError: A required field is missing, or the steps or the interval are unusable;
            the message names the field and the fix.
    """
    missing = [k for k in ("model", "seldonDeployment", "candidate") if not spec.get(k)]
    if missing:
        raise SpecError(f"spec.{missing[0]} is required; set it (see examples/cluster/modelrollout.yaml)")
    steps = tuple(int(s) for s in spec.get("steps") or (10, 50, 100))
    if any(not 1 <= s <= 100 for s in steps) or list(steps) != sorted(set(steps)):
        raise SpecError(
            f"spec.steps {list(steps)} must be increasing weights from 1 to 100, such as [10, 50, 100]"
        )
    strategy = str(spec.get("strategy") or "canary")
    if strategy not in STRATEGIES:
        raise SpecError(f"spec.strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    analysis = dict(spec.get("analysis") or {})
    unknown = sorted(set(analysis) - set(ANALYSIS_FIELDS))
    if unknown:
        raise SpecError(f"spec.analysis.{unknown[0]} is not a setting; use one of {sorted(ANALYSIS_FIELDS)}")
    settings = _analysis(analysis)
    return RolloutSpec(
        model=str(spec["model"]),
        seldon_deployment=str(spec["seldonDeployment"]),
        candidate=str(spec["candidate"]),
        strategy=strategy,
        steps=steps,
        analysis=settings,
        interval_s=int(settings.interval_seconds),
        paused=bool(spec.get("paused", False)),
        store=spec.get("store") or None,
    )


def _analysis(analysis: Mapping[str, Any]) -> RolloutAnalysis:
    """The config's analysis settings from spec.analysis (unset names: the config's defaults).

    Raises:
        SpecError: A value is out of its bounds or of the wrong type; the message names it.
    """
    try:
        values = section_values(RolloutAnalysis, analysis, ANALYSIS_DURATIONS)
    except ValueError as exc:  # a duration: name the one that failed
        bad = next(k for k in ANALYSIS_DURATIONS.values() if k in analysis and str(analysis[k]) in str(exc))
        raise SpecError(f"spec.analysis.{bad}: {exc}") from None
    try:
        return RolloutAnalysis(**values)
    except ValidationError as exc:
        problem = exc.errors()[0]
        name = str(problem["loc"][0]) if problem["loc"] else ""
        key = {v: k for k, v in ANALYSIS_FIELDS.items()}.get(name, name)
        raise SpecError(f"spec.analysis.{key}: {problem['msg']} (got {problem.get('input')!r})") from None


def rollout_of(spec: RolloutSpec, status: Mapping[str, Any]) -> Rollout | None:
    """The rollout the status records for the spec's candidate, or None when none started."""
    phase = {v: k for k, v in PHASES.items()}.get(str(status.get("phase")))
    if phase is None or status.get("candidate") != spec.candidate:
        return None
    return Rollout(
        model=spec.model,
        strategy=str(status["strategy"]),
        production=status.get("production"),
        candidate=spec.candidate,
        steps=tuple(status["steps"]),
        step=int(status.get("step", 0)),
        phase=phase,  # type: ignore[arg-type]
        started=str(status["startedAt"]),
        history=tuple(status.get("history") or ()),
    )


def condition(kind: str, ok: bool, reason: str, message: str, now: datetime) -> dict[str, Any]:
    """A status condition."""
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now.isoformat(timespec="seconds"),
    }


def with_condition(conditions: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace the condition of new's type; keep its transition time when its status is unchanged."""
    old = next((c for c in conditions if c.get("type") == new["type"]), None)
    if old is not None and old.get("status") == new["status"] and old.get("reason") == new["reason"]:
        new = {**new, "lastTransitionTime": old.get("lastTransitionTime", new["lastTransitionTime"])}
    return [*(c for c in conditions if c.get("type") != new["type"]), new]


def status_of(
    rollout: Rollout, previous: Mapping[str, Any], now: datetime, verdict: Verdict | None = None
) -> dict[str, Any]:
    """The status recording `rollout` (and the verdict that moved it, when one did)."""
    status: dict[str, Any] = {
        "phase": PHASES[rollout.phase],
        "candidate": rollout.candidate,
        "strategy": rollout.strategy,
        "steps": list(rollout.steps),
        "step": rollout.step,
        "weight": rollout.weight,
        "startedAt": rollout.started,
        "history": list(rollout.history[-HISTORY_LIMIT:]),
        "conditions": list(previous.get("conditions") or []),
    }
    if rollout.production is not None:
        status["production"] = rollout.production
    for key in ("lastAnalysisAt", "lastVerdict", "lastReason", "checks", "needs", "observedGeneration"):
        if key in previous and previous.get("candidate") == rollout.candidate:
            status[key] = previous[key]
    if verdict is not None:
        status["lastAnalysisAt"] = now.isoformat(timespec="seconds")
        status["lastVerdict"] = verdict.decision
        status["lastReason"] = "; ".join(verdict.reasons)
        status["checks"] = verdict.checks
        if verdict.needs:
            status["needs"] = verdict.needs
        else:
            status.pop("needs", None)
    return status


@dataclass
class RolloutPlan:
    """What one reconcile decided: the status to write first, then the state to converge to."""

    status: dict[str, Any]
    rollout: Rollout
    action: str
    """start, hold, step, promote, rollback, wait, paused or done."""
    events: list[Event] = field(default_factory=list)
    requeue_s: float | None = None
    """Seconds until the next analysis is due (None: nothing more to do)."""
    superseded: str | None = None
    """A candidate an earlier spec named, whose unfinished rollout this one replaces."""

    @property
    def converge(self) -> bool:
        """Whether the SeldonDeployment and the stages must follow this plan now.

        While progressing, always (applying what is there writes nothing). A finished rollout
        converges once, until status.applied says its last state reached the cluster; after
        that it no longer owns the deployment (a later ModelRollout may have moved it on).
        """
        return self.rollout.phase == "progressing" or not self.status.get("applied")


def reconcile(
    spec: RolloutSpec,
    status: Mapping[str, Any],
    production: str | None,
    now: datetime,
    judge: Callable[[Rollout], Verdict],
    generation: int | None = None,
) -> RolloutPlan:
    """Start the rollout, or analyse it when its interval has passed and apply the verdict.

    Args:
        spec: The checked spec.
        status: The resource's status as read (empty at first).
        production: The registry's production version now.
        now: The clock (UTC).
        judge: The verdict on the current step's request logs (called only when one is due).
        generation: metadata.generation, recorded as observedGeneration.
    """
    rollout = rollout_of(spec, status)
    plan = (
        _start(spec, status, production, now) if rollout is None else _step(spec, rollout, status, now, judge)
    )
    if plan.action in ("wait", "paused", "done"):
        plan.status["applied"] = bool(status.get("applied"))
    else:
        plan.status["applied"] = False  # a new decision: the runner sets it once the cluster follows
    plan.status["observedGeneration"] = (
        generation if generation is not None else status.get("observedGeneration")
    )
    if plan.status["observedGeneration"] is None:
        del plan.status["observedGeneration"]
    ready = plan.rollout.phase != "rolled_back"
    message = plan.status.get("lastReason") or plan.rollout.history[-1]["reason"]
    plan.status["conditions"] = with_condition(
        with_condition(
            plan.status["conditions"], condition("SpecValid", True, "Accepted", "spec is valid", now)
        ),
        condition("Ready", ready, PHASES[plan.rollout.phase], str(message), now),
    )
    return plan


def _start(
    spec: RolloutSpec, status: Mapping[str, Any], production: str | None, now: datetime
) -> RolloutPlan:
    previous = status.get("candidate")
    superseded = (
        str(previous)
        if previous and previous != spec.candidate and status.get("phase") == "Progressing"
        else None
    )
    if production == spec.candidate:  # applied again after its promotion (GitOps re-sync, restore)
        rollout = Rollout(spec.model, spec.strategy, production, spec.candidate, spec.steps, phase="promoted")
        rollout = replace(
            rollout,
            history=(
                {
                    "time": rollout.started,
                    "action": "promote",
                    "weight": 100,
                    "reason": "already in production",
                },
            ),
        )
    else:
        rollout = start(spec.model, spec.strategy, production, spec.candidate, list(spec.steps))
    fresh = status_of(rollout, {"conditions": status.get("conditions") or []}, now)
    fresh["lastAnalysisAt"] = now.isoformat(timespec="seconds")  # the first interval counts from here
    entry = rollout.history[-1]
    events: list[Event] = [
        ("Normal", "Started" if rollout.phase == "progressing" else "Promoted", entry["reason"])
    ]
    if superseded:
        events.insert(
            0,
            ("Warning", "Superseded", f"v{superseded} was still rolling out; v{spec.candidate} replaces it"),
        )
    due = spec.interval_s if rollout.phase == "progressing" else None
    return RolloutPlan(fresh, rollout, "start", events, due, superseded)


def _step(
    spec: RolloutSpec,
    rollout: Rollout,
    status: Mapping[str, Any],
    now: datetime,
    judge: Callable[[Rollout], Verdict],
) -> RolloutPlan:
    same = status_of(rollout, status, now)
    if rollout.phase != "progressing":
        return RolloutPlan(same, rollout, "done")
    if spec.paused:
        same["lastReason"] = "paused: spec.paused is true; set it to false to resume the analysis"
        return RolloutPlan(same, rollout, "paused", requeue_s=float(spec.interval_s))
    last = status.get("lastAnalysisAt")
    elapsed = (now - datetime.fromisoformat(str(last))).total_seconds() if last else float(spec.interval_s)
    if elapsed < spec.interval_s:
        return RolloutPlan(same, rollout, "wait", requeue_s=spec.interval_s - elapsed)
    verdict = judge(rollout)
    moved, action = advance(rollout, verdict)
    events: list[Event] = []
    reason = "; ".join(verdict.reasons)
    if action == "step":
        events.append(("Normal", "Stepped", f"canary v{moved.candidate} to {moved.weight}%: {reason}"))
    elif action == "promote":
        events.append(("Normal", "Promoted", f"v{moved.candidate} is production: {reason}"))
    elif action == "rollback":
        events.append(("Warning", "RolledBack", f"v{moved.candidate} rolled back: {reason}"))
    requeue = float(spec.interval_s) if moved.phase == "progressing" else None
    return RolloutPlan(status_of(moved, status, now, verdict), moved, action, events, requeue)
