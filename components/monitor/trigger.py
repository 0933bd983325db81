"""When a finding starts a retraining run: one run per drift episode, a cooldown, a daily cap.

Pure: `decide` takes the trigger state (kept with the monitor's watermark), a window's
findings and the time, and returns the decision and the new state. Time is the window's
end, so a replay or a catch-up after downtime decides exactly as live checks would have.

An episode is a run of windows with findings the trigger acts on, against one production
version. It ends at the first window without one, or when another version becomes
production (drift against the new version's reference is news). Within an episode at most
one run starts (another after a failed one); a decision that was blocked (cooldown, daily
cap, another run in flight) is tried again on the next window with findings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

Action = Literal["trigger", "dry_run", "skip", "none"]


@dataclass(frozen=True)
class TriggerPolicy:
    """The configured limits (monitoring.trigger)."""

    on: tuple[str, ...] = ("data_drift", "embedding_drift", "performance")
    dry_run: bool = False
    cooldown_minutes: int = 360
    max_runs_per_day: int = 2


@dataclass(frozen=True)
class TriggerState:
    """What the trigger remembers between checks."""

    episode: dict[str, Any] | None = None  # {"since": window, "version": v, "run": id or None}
    runs: tuple[dict[str, Any], ...] = ()  # {"run_id", "window", "time", "status", "dry_run"}

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"episode": self.episode, "runs": list(self.runs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TriggerState:
        """Inverse of to_dict."""
        return cls(data.get("episode"), tuple(data.get("runs", ())))


@dataclass(frozen=True)
class Decision:
    """What was decided for one window, and why."""

    window: str
    time: str
    action: Action
    reason: str
    findings: tuple[str, ...] = ()
    run_id: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "findings": list(self.findings)}


def run_id_for(model: str, window: str) -> str:
    """The retraining run of a window: deterministic, so a restarted monitor finds the same run."""
    return f"retrain-{model}-{window.lower()}"


def decide(
    policy: TriggerPolicy,
    state: TriggerState,
    model: str,
    window: str,
    at: datetime,
    findings: list[str],
    version: str,
    in_flight: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> tuple[Decision, TriggerState]:
    """The decision for one window with a verdict, and the trigger state after it.

    Args:
        policy: Limits from the config.
        state: The state before this window.
        model: Model name (part of the run id).
        window: The window's name.
        at: The window's end: the decision's clock.
        findings: What the window found (data_drift, embedding_drift, prediction_drift, performance).
        version: The production version the window was checked against.
        in_flight: A retraining run still running, if any.
        evidence: What the run gets as parameters and lineage.
    """
    stamp = at.isoformat()
    acting = [f for f in findings if f in policy.on]

    def decision(action: Action, reason: str, run: str | None = None) -> Decision:
        return Decision(window, stamp, action, reason, tuple(findings), run, evidence or {})

    episode = state.episode
    if episode is not None and episode.get("version") != version:
        episode = None  # a new production version: what drifts now is a new episode
    if not acting:
        reason = (
            "clean window"
            if not findings
            else f"{', '.join(findings)} found; the trigger acts on {list(policy.on)}"
        )
        if episode is not None:
            reason += f"; the episode since {episode['since']} ended"
        return decision("none", reason), replace(state, episode=None)
    if episode is None:
        episode = {"since": window, "version": version, "run": None}
    failed = {r["run_id"] for r in state.runs if r.get("status") == "failed"}
    if episode.get("run") and episode["run"] not in failed:
        return decision(
            "skip", f"the episode since {episode['since']} already started {episode['run']}"
        ), replace(state, episode=episode)
    blocked = _blocked(policy, state, at, in_flight)
    if blocked:
        return decision("skip", blocked), replace(state, episode=episode)
    run_id = run_id_for(model, window)  # a retry after a failed run gets the new window's id
    record = {
        "run_id": run_id,
        "window": window,
        "time": stamp,
        "status": "starting",
        "dry_run": policy.dry_run,
    }
    episode = {**episode, "run": run_id}
    if policy.dry_run:
        record["status"] = "dry_run"
        return decision(
            "dry_run", f"dry run: would start {run_id} ({', '.join(acting)})", run_id
        ), TriggerState(episode, (*state.runs, record))
    return decision("trigger", f"{', '.join(acting)}: starting {run_id}", run_id), TriggerState(
        episode, (*state.runs, record)
    )


def _blocked(policy: TriggerPolicy, state: TriggerState, at: datetime, in_flight: str | None) -> str:
    """Why no run may start now ('' when one may)."""
    if in_flight:
        return f"{in_flight} is still running"
    started = [r for r in state.runs if not r.get("dry_run")]
    if policy.max_runs_per_day == 0:
        return "monitoring.trigger.max_runs_per_day is 0"
    if started:
        last = datetime.fromisoformat(started[-1]["time"])
        until = last + timedelta(minutes=policy.cooldown_minutes)
        if at < until:
            return f"cooldown after {started[-1]['run_id']} until {until.isoformat()}"
    day = [r for r in started if datetime.fromisoformat(r["time"]) > at - timedelta(days=1)]
    if len(day) >= policy.max_runs_per_day:
        return f"{len(day)} runs started in the last 24 hours (monitoring.trigger.max_runs_per_day)"
    return ""
