"""The verdict on a rollout step: promote on evidence, roll back on evidence of harm, else hold.

One pure function of the request logs, the labels that have arrived and the candidate's own
validation evidence, called by the local controller (`kubeloop serve --auto`, `kubeloop
rollout`), the operator and the decision benchmark alike:

- guardrails on the current step's requests (analysis.py): 5xx rate, typical and tail latency,
  and the candidate's served scores against its own validation scores;
- quality on every labeled row since the rollout started (quality.py): non-inferiority to main
  within `margin`, paired on a shadow's mirrored rows, unpaired on a canary's; floors;
- agreement, correlation and score shift against main, reported as information only.

A step is promoted when every guardrail and the quality bound pass; rolled back when any check
shows harm beyond its tolerance; held otherwise, with the rows still needed (power.py). A step
held past `max_step_seconds` does what `on_timeout` says. The bounds are always-valid, so
looking every interval does not raise the error rates; a strategy with a shadow must show
non-inferiority on the shadow's paired rows before any patient gets the candidate's answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from components.common.rollout_config import RolloutAnalysis
from components.common.tasks import Task, default_task
from components.deploy.analysis import (
    Check,
    Verdict,
    error_check,
    latency_checks,
    own_shift_check,
    psi,
    waiting,
)
from components.deploy.logframe import Key, answered, labels_frame, log_frame, requests, since, with_labels
from components.deploy.power import Needs, duration, needs
from components.deploy.quality import Comparison, Labeled, compare, floor_checks, information, quality_check
from components.deploy.rollout import Rollout

DEFAULT_PREVALENCE = 0.05
DEFAULT_EXPECTED = {"roc_auc": 0.85, "recall": 0.8}
"""What the power calculation assumes before the version's own evaluation or labels say more."""


@dataclass(frozen=True)
class Evidence:
    """What the analysis knows of the candidate besides the logs."""

    reference: np.ndarray | None = None
    """Its answers on its validation split, (rows, len(Task.answer_names)): what its served
    scores should look like."""
    main_drifted: bool = False
    """The monitor's evidence says main drifted (a drift-triggered candidate)."""
    prevalence: float | None = None
    """Share of the class of interest in its evaluation data."""
    expected_metric: float | None = None
    """Its quality metric at evaluation."""


Records: TypeAlias = Iterable[Mapping[str, Any]] | pd.DataFrame
"""Logged rows: the log's JSON records, or a frame already in logframe.log_frame's form."""


def judge(
    rollout: Rollout,
    main: Records,
    candidate: Records,
    labels: Mapping[Key, int] | pd.DataFrame,
    settings: RolloutAnalysis,
    now: datetime,
    task: Task | None = None,
    evidence: Evidence | None = None,
) -> Verdict:
    """The verdict on the rollout's current step.

    Args:
        rollout: The rollout state (strategy, weight, when the step and the rollout started).
        main: Main's logged rows since the rollout started (older rows and other versions are
            left out here).
        candidate: The candidate's logged rows (shadow and canary) since the rollout started.
        labels: (request id, row) -> class index (`Task.targets`) of the labels arrived so far,
            or a frame of request_id, row and target.
        settings: The thresholds (`deployment.analysis`).
        now: The clock: a step's time budget and the evidence's arrival rate count from it.
        task: The candidate version's task, which reads the answers (default: binary).
        evidence: The candidate's validation scores and the monitor's word on main.
    """
    task, evidence = task or default_task(), evidence or Evidence()
    names = task.answer_names
    started, step_started = pd.Timestamp(rollout.started), pd.Timestamp(rollout.step_started)
    main_all = since(_columns(log_frame(main, names)), rollout.production, started)
    candidate_all = since(_columns(log_frame(candidate, names)), rollout.candidate, started)
    main_step = main_all[main_all["time"] >= step_started]
    candidate_step = candidate_all[candidate_all["time"] >= step_started]
    label = "shadow" if rollout.shadowing else "canary"

    checks = _guardrails(main_step, candidate_step, label, settings)
    step_answers = answered(candidate_step, names)
    checks.append(_own_shift(task, step_answers, evidence.reference, settings))
    quality, decisive, labeled = _quality(rollout, task, main_all, candidate_all, labels, settings)
    checks += quality
    checks += floor_checks(task, labeled, settings)
    checks += _proxies(task, answered(main_step, names), step_answers, rollout.shadowing, evidence)

    failed = [c for c in checks if c["status"] == "fail"]
    if failed:
        return Verdict("rollback", [c["detail"] for c in failed], checks)
    pending = [c for c in checks if c["status"] == "pending"]
    if not pending:
        judged = [c["detail"] for c in checks if c["status"] == "pass"]
        return Verdict("promote", ["every check passed: " + "; ".join(judged)], checks)
    return _hold(rollout, checks, pending, decisive, settings, evidence, now, len(candidate_step))


def _hold(
    rollout: Rollout,
    checks: list[Check],
    pending: list[Check],
    decisive: Comparison | None,
    s: RolloutAnalysis,
    evidence: Evidence,
    now: datetime,
    candidate_rows: int,
) -> Verdict:
    """A hold that says what it waits for, or what a spent step budget does (on_timeout)."""
    holding = "holding the shadow" if rollout.shadowing else f"holding at {rollout.weight}%"
    reasons = [c["detail"] for c in pending]
    wanted = None
    spent = (now - datetime.fromisoformat(rollout.step_started)).total_seconds()
    if decisive is not None and any(c["check"] == "quality" for c in pending):
        wanted = _needs(rollout, decisive, s, evidence, candidate_rows / max(spent, 1e-9))
        reasons.append(wanted.sentence(holding))
    else:
        reasons.append(holding)
    needs = wanted.to_dict() if wanted else None
    if spent > s.max_step_seconds:
        budget = duration(s.max_step_seconds)
        if s.on_timeout == "rollback":
            why = (
                f"the step's budget of {budget} is spent without the evidence it needs (on_timeout: rollback)"
            )
            return Verdict("rollback", [why, *reasons], checks, needs)
        reasons.insert(
            0, f"the step's budget of {budget} is spent: a person decides (kubeloop rollout promote|rollback)"
        )
    return Verdict("hold", reasons, checks, needs)


def _columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the analysis reads: the keys stand for the text ids, which are slow to copy."""
    return frame.drop(columns=["request_id"])


def _guardrails(main: pd.DataFrame, candidate: pd.DataFrame, label: str, s: RolloutAnalysis) -> list[Check]:
    main_requests, candidate_requests = requests(main), requests(candidate)
    have = {"main": len(main_requests), label: len(candidate_requests)}
    if min(have.values()) < s.min_requests:
        return [waiting(have, s)]
    errors = error_check(main_requests, candidate_requests, label, s)  # from the first request
    main_timed, candidate_timed = main_requests, candidate_requests
    if s.warmup_seconds:
        # Latency from warmup_seconds after the candidate's first request of the step on, for
        # both sides (the same stretch of time): a process that has just started answers slowly
        # for a moment, which is not the version's latency.
        warm = candidate["time"].min() + pd.Timedelta(seconds=s.warmup_seconds)
        main_timed = requests(main[main["time"] >= warm])
        candidate_timed = requests(candidate[candidate["time"] >= warm])
        have = {"main": len(main_timed), label: len(candidate_timed)}
        if min(have.values()) < s.min_requests:
            return [errors, waiting(have, s, warmed=True)]
    lat_main, lat_candidate = main_timed["latency_ms"].to_numpy(), candidate_timed["latency_ms"].to_numpy()
    return [errors, *latency_checks(lat_main, lat_candidate, label, s)]


def _own_shift(task: Task, answers: pd.DataFrame, reference: np.ndarray | None, s: RolloutAnalysis) -> Check:
    if reference is None or not len(reference):
        return information(
            "own score shift",
            math.nan,
            "no validation scores recorded for the candidate",
            "nothing to compare with",
        )
    if len(answers) < s.min_requests:
        return {
            "check": "own score shift",
            "status": "pending",
            "passed": True,
            "observed": None,
            "limit": s.max_psi,
            "rows": len(answers),
            "detail": f"{len(answers)} scored rows at this weight; its score distribution is judged "
            f"from {s.min_requests}",
        }
    served = answers[list(task.answer_names)].to_numpy(np.float64)
    expected = np.asarray(reference, dtype=float).reshape(-1, len(task.answer_names))
    return own_shift_check(task.answer_names, expected, served, s)


def _quality(
    rollout: Rollout,
    task: Task,
    main: pd.DataFrame,
    candidate: pd.DataFrame,
    labels: Mapping[Key, int] | pd.DataFrame,
    s: RolloutAnalysis,
) -> tuple[list[Check], Comparison | None, Labeled]:
    """The quality checks, the comparison whose pass promotes (None when none is needed), and the
    candidate's labeled rows (for the floors)."""
    names = task.answer_names
    none = Labeled(np.zeros(0, np.int64), np.zeros((0, len(names))), np.zeros(0, np.int64))
    if s.label_share == 0:
        if s.on_no_labels == "guardrails":
            why = "labels never arrive (label_share 0): promoted on guardrails alone, as on_no_labels says"
            return [information("quality", math.nan, "not judged", why)], None, none
        detail = (
            "labels never arrive (label_share 0): quality cannot be shown, so a person decides "
            "(on_no_labels: hold; kubeloop rollout promote|rollback)"
        )
        pending = {
            "check": "quality",
            "status": "pending",
            "passed": True,
            "observed": None,
            "limit": -s.margin,
        }
        return [{**pending, "detail": detail}], None, none
    known = labels_frame(labels)
    ours, theirs = with_labels(answered(candidate, names), known), with_labels(answered(main, names), known)
    pairs = ours.merge(theirs.drop(columns="target"), on="key", suffixes=("", "_main"))
    shadowed = rollout.strategy in ("shadow", "shadow-canary")
    checks, decisive = [], None
    if shadowed:
        main_side = pairs[[f"{n}_main" for n in names] + ["decision_main", "target"]]
        main_side.columns = [*names, "decision", "target"]
        paired = compare(task, Labeled.of(task, main_side), Labeled.of(task, pairs), s, paired=True)
        checks.append(quality_check(paired, s))
        decisive = paired
    if rollout.step > 0:
        # An earlier step was left on a verdict that showed non-inferiority: the bounds hold at
        # every look, so that claim stands; from here on only evidence of harm can act on it.
        checks = [_shown(c) for c in checks]
        decisive = None
    if not rollout.shadowing:
        mirrored = pairs["key"].to_numpy()
        own = ours[~np.isin(ours["key"].to_numpy(), mirrored)]
        main_own = theirs[~np.isin(theirs["key"].to_numpy(), mirrored)]
        unpaired = compare(task, Labeled.of(task, main_own), Labeled.of(task, own), s, paired=False)
        check = quality_check(unpaired, s)
        if shadowed:
            # Non-inferiority was shown on the shadow's paired rows; the canary's own rows can
            # still show harm, but their pass is not needed.
            if check["status"] != "fail":
                check = {
                    **check,
                    "status": "info",
                    "detail": f"{check['detail']} (the shadow's paired rows judge)",
                }
            check["check"] = "quality (canary rows)"
        elif rollout.step == 0:
            decisive = unpaired
        checks.append(_shown(check) if rollout.step > 0 else check)
    return checks, decisive, Labeled.of(task, ours)


def _shown(check: Check) -> Check:
    """A quality check after non-inferiority was shown at an earlier step: a fail still acts."""
    if check["status"] in ("fail", "info"):
        return check
    return {
        **check,
        "status": "info",
        "detail": f"{check['detail']} (non-inferiority was shown at an earlier step)",
    }


def _needs(
    rollout: Rollout, comparison: Comparison, s: RolloutAnalysis, evidence: Evidence, candidate_rate: float
) -> Needs:
    c = comparison.candidate
    observed = c.positives / c.rows if c.rows and c.positives >= 5 else None
    prevalence = observed or evidence.prevalence or DEFAULT_PREVALENCE
    expected = evidence.expected_metric or DEFAULT_EXPECTED[s.quality_metric]
    weight = max(rollout.weight, 1)
    return needs(
        s,
        c.what,
        c.rows,
        c.positives,
        comparison.bounds.se if comparison.bounds else None,
        comparison.bounds.estimate if comparison.bounds else None,
        expected,
        prevalence,
        comparison.paired,
        (100 - weight) / weight,
        candidate_rate or None,
    )


def _proxies(
    task: Task, main: pd.DataFrame, candidate: pd.DataFrame, shadowing: bool, evidence: Evidence
) -> list[Check]:
    """Agreement, correlation and score shift against main, which decide nothing."""
    why = (
        "the monitor's evidence says main drifted, so disagreeing with it is expected"
        if evidence.main_drifted
        else "they take main to be right"
    )
    names = list(task.answer_names)
    checks = []
    if shadowing:
        pairs = candidate.merge(main, on="key", suffixes=("", "_main"))
        if len(pairs):
            agreement = float(np.mean(pairs["decision"].to_numpy() == pairs["decision_main"].to_numpy()))
            detail = f"same decision as main on {agreement:.1%} of {len(pairs)} paired rows"
            checks.append(information("agreement", agreement, detail, why))
            a, b = pairs[[f"{n}_main" for n in names]].to_numpy(), pairs[names].to_numpy()
            r = min(
                float(np.corrcoef(a[:, i], b[:, i])[0, 1]) if a[:, i].std() and b[:, i].std() else 1.0
                for i in range(a.shape[1])
            )
            checks.append(
                information("score correlation", r, f"Pearson r {r:.3f} with main's probabilities", why)
            )
    elif len(main) and len(candidate):
        a, b = main[names].to_numpy(), candidate[names].to_numpy()
        shift = max(psi(a[:, i], b[:, i]) for i in range(a.shape[1]))
        detail = f"PSI of the canary's scores against main's {shift:.3f}"
        checks.append(information("score shift vs main", shift, detail, why))
    return checks
