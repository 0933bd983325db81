"""The monitor's pass: check every closed window after the watermark, decide, start runs, move on.

State (`monitor/<model>/state.json`) holds the watermark (the end of the last window
decided) and the trigger state; it is replaced with a compare-and-swap, so two monitors
never both decide a window. A window's decision and the watermark move in the same write,
before any run starts: the run is recorded as "starting" first and started after, and a
pass begins by starting any run still "starting" (a crash in between). Launchers make
starting the same run twice harmless (the run id is derived from the window).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from components.common.config import KubeloopConfig
from components.common.labels import read_labels
from components.common.monitoring_config import duration_seconds
from components.common.registry import Registry
from components.common.store import ConflictError, NotFoundError, Store
from components.monitor.check import WindowCheck, check_window, window_prefix
from components.monitor.traffic import Window, closed_windows, first_logged, parse_time
from components.monitor.trigger import Decision, TriggerPolicy, TriggerState, decide

logger = logging.getLogger(__name__)

MAX_RUNS_KEPT = 100
"""Run records kept in the state (older ones only matter for the daily cap, which looks back a day)."""


class Launcher(Protocol):
    """Starts retraining runs and reports on them (locally a process, on a cluster a KFP run)."""

    def start(self, run_id: str, evidence: dict[str, Any]) -> str:
        """Start run `run_id` unless it already exists; returns where to follow it."""

    def status(self, run_id: str) -> str:
        """running, succeeded or failed."""


def state_key(model: str) -> str:
    """The monitor's state in the store."""
    return f"monitor/{model}/state.json"


@dataclass
class MonitorState:
    """Watermark plus trigger state, with the store version it was read at."""

    watermark: datetime | None = None
    trigger: TriggerState = field(default_factory=TriggerState)
    version: str | None = None

    def to_json(self) -> bytes:
        """JSON bytes for the store."""
        data = {
            "watermark": self.watermark.isoformat() if self.watermark else None,
            **self.trigger.to_dict(),
        }
        return json.dumps(data, indent=2).encode()


def load_state(store: Store, model: str) -> MonitorState:
    """The state as stored (empty before the first pass)."""
    try:
        data, version = store.read_versioned(state_key(model))
    except NotFoundError:
        return MonitorState()
    raw = json.loads(data)
    mark = raw.get("watermark")
    return MonitorState(parse_time(mark) if mark else None, TriggerState.from_dict(raw), version)


def save_state(store: Store, model: str, state: MonitorState) -> None:
    """Replace the state if nobody else did since it was read.

    Raises:
        RuntimeError: Another monitor moved the state (run one monitor per model).
    """
    try:
        state.version = store.write_if(state_key(model), state.to_json(), state.version)
    except ConflictError as exc:
        raise RuntimeError(
            f"another monitor changed {state_key(model)} during this pass; its windows are decided "
            "there. Run a single monitor per model (the CronJob has concurrencyPolicy: Forbid)"
        ) from exc


@dataclass
class PassResult:
    """What one pass did."""

    checks: list[WindowCheck] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    waiting: str = ""  # why no window was checked


def _in_flight(state: TriggerState, launcher: Launcher) -> tuple[str | None, TriggerState]:
    """The run still running, if any, after refreshing the status of started runs."""
    running = None
    runs = []
    for run in state.runs:
        if run.get("status") in ("started", "running"):
            status = launcher.status(run["run_id"])
            run = {**run, "status": status}
            if status == "running":
                running = run["run_id"]
        runs.append(run)
    return running, TriggerState(state.episode, tuple(runs))


def _start_pending(
    store: Store, model: str, state: MonitorState, launcher: Launcher, result: PassResult
) -> None:
    """Start every run recorded as starting; mark it started."""
    for index, run in enumerate(state.trigger.runs):
        if run.get("status") != "starting":
            continue
        evidence = store.read_json(f"monitor/{model}/runs/{run['run_id']}/evidence.json")
        where = launcher.start(run["run_id"], evidence)
        runs = list(state.trigger.runs)
        runs[index] = {**run, "status": "started", "where": where}
        state.trigger = TriggerState(state.trigger.episode, tuple(runs))
        save_state(store, model, state)
        result.started.append(run["run_id"])
        logger.info("started retraining run %s (%s)", run["run_id"], where)


def monitor_pass(
    store: Store,
    config: KubeloopConfig,
    launcher: Launcher,
    now: datetime | None = None,
    progress: Callable[[str], None] = print,
) -> PassResult:
    """Check each closed window after the watermark, in order, and act on its findings."""
    now = now or datetime.now(UTC)
    model, monitoring = config.name, config.monitoring
    result = PassResult()
    state = load_state(store, model)
    _start_pending(store, model, state, launcher, result)
    version = Registry(store).champion(model)
    if version is None:
        result.waiting = f"{model} has no production version yet: deploy one (kubeloop deploy) first"
        return result
    first = first_logged(store, model, monitoring.predictors)
    if first is None:
        result.waiting = f"no request logs under logs/{model}/ for predictors {monitoring.predictors} yet"
        return result
    windows = closed_windows(
        first, state.watermark, now, duration_seconds(monitoring.window), monitoring.late_seconds
    )
    if not windows:
        result.waiting = (
            f"no window has closed since {state.watermark.isoformat() if state.watermark else first}"
        )
        return result
    labels, skipped_labels = read_labels(store, model) if monitoring.performance.enabled else (None, {})
    for key, why in skipped_labels.items():
        progress(f"  skipped label file {key}: {why}")
    policy = TriggerPolicy(
        tuple(monitoring.trigger.on),
        monitoring.trigger.dry_run,
        monitoring.trigger.cooldown_minutes,
        monitoring.trigger.max_runs_per_day,
    )
    for number, window in enumerate(windows, 1):
        check = check_window(store, config, window, version, labels)
        result.checks.append(check)
        progress(f"window {number}/{len(windows)} {window}: {_summary(check)}")
        decision = _decide(store, config, state, check, window, policy, launcher)
        result.decisions.append(decision)
        progress(f"  decision: {decision.action} ({decision.reason})")
        _start_pending(store, model, state, launcher, result)
    return result


def _decide(
    store: Store,
    config: KubeloopConfig,
    state: MonitorState,
    check: WindowCheck,
    window: Window,
    policy: TriggerPolicy,
    launcher: Launcher,
) -> Decision:
    """Decide one window and move the watermark past it (one state write)."""
    model = config.name
    running, trigger = _in_flight(state.trigger, launcher)
    if not check.judged:
        why = (check.data_drift or {}).get("too_small") or "; ".join(check.problems) or "no verdict"
        decision = Decision(
            window.name, window.end.isoformat(), "none", f"no verdict: {why}", tuple(check.findings)
        )
    else:
        report_uri = f"{store.uri.rstrip('/')}/{check.report}" if check.report else ""
        decision, trigger = decide(
            policy,
            trigger,
            model,
            window.name,
            window.end,
            check.findings,
            check.version,
            running,
            check.evidence(report_uri),
        )
    if decision.action == "trigger" and decision.run_id:
        store.write_json(f"monitor/{model}/runs/{decision.run_id}/evidence.json", decision.evidence)
    store.write_json(f"{window_prefix(model, window)}/decision.json", decision.to_dict())
    state.trigger = TriggerState(trigger.episode, trigger.runs[-MAX_RUNS_KEPT:])
    state.watermark = window.end
    save_state(store, model, state)
    return decision


def _summary(check: WindowCheck) -> str:
    drift = check.data_drift or {}
    if not check.judged:
        return drift.get("too_small") or "; ".join(check.problems) or "no verdict"
    parts = [f"{check.rows} rows"]
    if drift.get("too_small"):
        parts.append(f"no data-drift verdict ({drift['too_small']})")
    elif drift:
        parts.append(f"{len(drift['drifted_columns'])}/{len(drift['columns'])} features drifted")
    embeddings = check.embedding_drift
    if embeddings and not embeddings.get("too_small"):
        parts.append(
            f"embeddings drifted ({embeddings['detail']})"
            if "embedding_drift" in check.findings
            else "embeddings stable"
        )
    if check.prediction_drift and not check.prediction_drift.get("too_small"):
        parts.append("prediction drift" if "prediction_drift" in check.findings else "predictions stable")
    if check.performance and not check.performance.get("too_small"):
        parts.append("performance decayed" if "performance" in check.findings else "performance holds")
    if check.skipped_files:
        parts.append(f"{len(check.skipped_files)} file(s) skipped")
    return ", ".join(parts)
