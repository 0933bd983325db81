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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from components.common.rollout_config import RolloutAnalysis
from components.common.tasks import Task, default_task
from components.deploy.analysis import (
    Check,
    Verdict,
    error_check,
    latency_checks,
    own_shift_check,
    psi,
    requests,
    waiting,
)
from components.deploy.power import Needs, duration, needs
from components.deploy.quality import (
    Comparison,
    Key,
    Outcome,
    columns,
    compare,
    floor_checks,
    information,
    outcomes,
    quality_check,
)
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


def _since(
    records: Sequence[Mapping[str, Any]], version: str | None, moment: datetime
) -> list[Mapping[str, Any]]:
    """The records of `version` at or after `moment`. Times in the log's own form (UTC with
    milliseconds, as now_iso writes them) compare as text; others are parsed."""
    stamp = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    out = []
    for r in records:
        if r.get("model_version") != version:
            continue
        time = r["time"]
        if len(time) == len(stamp) and time.endswith("+00:00"):
            if time >= stamp:
                out.append(r)
        elif datetime.fromisoformat(time) >= moment:
            out.append(r)
    return out


def judge(
    rollout: Rollout,
    main: Sequence[Mapping[str, Any]],
    candidate: Sequence[Mapping[str, Any]],
    labels: Mapping[Key, int],
    settings: RolloutAnalysis,
    now: datetime,
    task: Task | None = None,
    evidence: Evidence | None = None,
) -> Verdict:
    """The verdict on the rollout's current step.

    Args:
        rollout: The rollout state (strategy, weight, when the step and the rollout started).
        main: Main's logged rows since the rollout started.
        candidate: The candidate's logged rows (shadow and canary) since the rollout started.
        labels: (request id, row) -> class index (`Task.targets`) of the labels arrived so far.
        settings: The thresholds (`deployment.analysis`).
        now: The clock: a step's time budget and the evidence's arrival rate count from it.
        task: The candidate version's task, which reads the answers (default: binary).
        evidence: The candidate's validation scores and the monitor's word on main.
    """
    task, evidence = task or default_task(), evidence or Evidence()
    started = datetime.fromisoformat(rollout.started)
    step_started = datetime.fromisoformat(rollout.step_started)
    main_all = _since(main, rollout.production, started)
    candidate_all = _since(candidate, rollout.candidate, started)
    main_step = _since(main_all, rollout.production, step_started)
    candidate_step = _since(candidate_all, rollout.candidate, step_started)
    label = "shadow" if rollout.shadowing else "canary"

    checks = _guardrails(main_step, candidate_step, label, settings)
    step_answers = outcomes(candidate_step, task)
    checks.append(_own_shift(task, step_answers, evidence.reference, settings))

    if settings.label_share > 0:  # labels will come: every answered row since the start counts
        main_answers, candidate_answers = outcomes(main_all, task), outcomes(candidate_all, task)
    else:
        main_answers, candidate_answers = {}, {}
    quality, decisive = _quality(rollout, task, main_answers, candidate_answers, labels, settings)
    checks += quality
    checks += floor_checks(task, candidate_answers, labels, settings)
    checks += _proxies(task, outcomes(main_step, task), step_answers, rollout.shadowing, evidence)

    failed = [c for c in checks if c["status"] == "fail"]
    if failed:
        return Verdict("rollback", [c["detail"] for c in failed], checks)
    pending = [c for c in checks if c["status"] == "pending"]
    if not pending:
        judged = [c["detail"] for c in checks if c["status"] == "pass"]
        return Verdict("promote", ["every check passed: " + "; ".join(judged)], checks)
    holding = "holding the shadow" if rollout.shadowing else f"holding at {rollout.weight}%"
    reasons = [c["detail"] for c in pending]
    wanted = None
    if decisive is not None and any(c["check"] == "quality" for c in pending) and settings.label_share > 0:
        elapsed = max((now - step_started).total_seconds(), 1e-9)
        wanted = _needs(rollout, decisive, settings, evidence, len(candidate_step) / elapsed)
        reasons.append(wanted.sentence(holding))
    else:
        reasons.append(holding)
    spent = (now - step_started).total_seconds()
    if spent > settings.max_step_seconds:
        budget = duration(settings.max_step_seconds)
        if settings.on_timeout == "rollback":
            why = (
                f"the step's budget of {budget} is spent without the evidence it needs (on_timeout: rollback)"
            )
            return Verdict("rollback", [why, *reasons], checks, wanted.to_dict() if wanted else None)
        reasons.insert(
            0, f"the step's budget of {budget} is spent: a person decides (kubeloop rollout promote|rollback)"
        )
    return Verdict("hold", reasons, checks, wanted.to_dict() if wanted else None)


def _guardrails(
    main: list[Mapping[str, Any]], candidate: list[Mapping[str, Any]], label: str, s: RolloutAnalysis
) -> list[Check]:
    main_requests, candidate_requests = requests(main), requests(candidate)  # type: ignore[arg-type]
    have = {"main": len(main_requests), label: len(candidate_requests)}
    if min(have.values()) < s.min_requests:
        return [waiting(have, s)]
    lat_main = np.array([r["latency_ms"] for r in main_requests.values()])
    lat_candidate = np.array([r["latency_ms"] for r in candidate_requests.values()])
    return [
        error_check(main_requests, candidate_requests, label, s),
        *latency_checks(lat_main, lat_candidate, label, s),
    ]


def _own_shift(
    task: Task, answers: Mapping[Key, Outcome], reference: np.ndarray | None, s: RolloutAnalysis
) -> Check:
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
    served = columns(task, answers, list(answers))
    return own_shift_check(
        task.answer_names, np.asarray(reference, dtype=float).reshape(-1, len(task.answer_names)), served, s
    )


def _quality(
    rollout: Rollout,
    task: Task,
    main: Mapping[Key, Outcome],
    candidate: Mapping[Key, Outcome],
    labels: Mapping[Key, int],
    s: RolloutAnalysis,
) -> tuple[list[Check], Comparison | None]:
    """The quality checks, and the comparison whose pass promotes (None when none is needed)."""
    if s.label_share == 0:
        if s.on_no_labels == "guardrails":
            why = "labels never arrive (label_share 0): promoted on guardrails alone, as on_no_labels says"
            return [information("quality", math.nan, "not judged", why)], None
        detail = (
            "labels never arrive (label_share 0): quality cannot be shown, so a person decides "
            "(on_no_labels: hold; kubeloop rollout promote|rollback)"
        )
        return [
            {
                "check": "quality",
                "status": "pending",
                "passed": True,
                "observed": None,
                "limit": -s.margin,
                "detail": detail,
            }
        ], None
    shadowed = rollout.strategy in ("shadow", "shadow-canary")
    paired_keys = {k for k in candidate if k in main}
    checks, decisive = [], None
    if shadowed:
        paired = compare(task, main, {k: candidate[k] for k in paired_keys}, labels, s, paired=True)
        checks.append(quality_check(paired, s))
        decisive = paired
    if not rollout.shadowing:
        own = {k: v for k, v in candidate.items() if k not in paired_keys}
        main_own = {k: v for k, v in main.items() if k not in paired_keys}
        unpaired = compare(task, main_own, own, labels, s, paired=False)
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
        else:
            decisive = unpaired
        checks.append(check)
    return checks, decisive


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
    task: Task,
    main: Mapping[Key, Outcome],
    candidate: Mapping[Key, Outcome],
    shadowing: bool,
    evidence: Evidence,
) -> list[Check]:
    """Agreement, correlation and score shift against main, which decide nothing."""
    why = (
        "the monitor's evidence says main drifted, so disagreeing with it is expected"
        if evidence.main_drifted
        else "they take main to be right"
    )
    checks = []
    if shadowing:
        paired = sorted(set(main) & set(candidate))
        if paired:
            agreement = float(np.mean([main[k][1] == candidate[k][1] for k in paired]))
            checks.append(
                information(
                    "agreement",
                    agreement,
                    f"same decision as main on {agreement:.1%} of {len(paired)} paired rows",
                    why,
                )
            )
            a, b = columns(task, main, paired), columns(task, candidate, paired)
            r = min(
                float(np.corrcoef(a[:, i], b[:, i])[0, 1]) if a[:, i].std() and b[:, i].std() else 1.0
                for i in range(a.shape[1])
            )
            checks.append(
                information("score correlation", r, f"Pearson r {r:.3f} with main's probabilities", why)
            )
    elif main and candidate:
        a, b = columns(task, main, list(main)), columns(task, candidate, list(candidate))
        shift = max(psi(a[:, i], b[:, i]) for i in range(a.shape[1]))
        checks.append(
            information(
                "score shift vs main", shift, f"PSI of the canary's scores against main's {shift:.3f}", why
            )
        )
    return checks
