"""The rollout analysis settings: the one definition the config, the analysis and the CRD share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.common.config_section import Section


class RolloutAnalysis(Section):
    """When a canary or shadow is promoted, held or rolled back (read from request logs and labels).

    Promotion needs evidence: the candidate's quality metric is no worse than main's by more
    than `margin` (the lower always-valid bound of candidate - main clears -margin), and each
    guardrail (5xx rate, typical and tail latency, its own served scores against its validation
    scores) is within its tolerance. A rollback needs evidence of harm beyond the same
    tolerances. Anything in between holds at the current weight until the evidence arrives or
    the step's time budget is spent. The bounds stay valid however often the analysis looks.
    """

    min_requests: int = Field(200, ge=1)
    """Requests each side needs at the current weight before a guardrail is judged."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Error rate of each one-sided test over all its looks: a candidate worse by the margin is
    promoted, or one within every tolerance rolled back, at most this often per check."""
    power: float = Field(0.8, gt=0, lt=1)
    """Chance an equal candidate clears the margin once the planned rows have arrived: sizes the
    evidence each step needs (the power calculation) and tunes the bounds to it."""
    quality_metric: Literal["roc_auc", "recall"] = "roc_auc"
    """What non-inferiority is judged on: roc_auc (multi-class: macro one-vs-rest) or recall of
    the class of interest at each version's own operating point (multi-class without one: macro)."""
    margin: float = Field(0.02, gt=0, le=1)
    """Non-inferiority margin: how much worse than main the quality metric may be."""
    min_labeled_positives: int = Field(20, ge=1)
    """Labeled positives (multi-class: rows of the rarest class) each side needs before the quality
    bounds are computed: below it the normal approximation they rest on is poor."""
    label_share: float = Field(1.0, ge=0, le=1)
    """Share of served rows that will ever be labeled (0: labels never arrive). Sizes the traffic
    the evidence needs."""
    label_delay_seconds: float = Field(0.0, ge=0)
    """Expected delay between serving a row and its label arriving (a screening programme learns
    outcomes weeks later). While labels are pending only guardrails are judged, which can hold or
    roll back but never promote."""
    on_no_labels: Literal["hold", "guardrails"] = "hold"
    """With label_share 0: hold for a person (default), or promote on guardrails alone, said as
    such in every verdict."""
    max_step_seconds: float = Field(1_209_600.0, gt=0)
    """Time budget of one step (default 14 days): a step still without the evidence it needs then
    does what on_timeout says."""
    on_timeout: Literal["hold", "rollback"] = "hold"
    """When a step's budget is spent without a verdict: hold for a person (`kubeloop rollout
    promote|rollback`; the analysis goes on) or roll back."""
    max_error_increase: float = Field(0.01, ge=0, le=1)
    """Tolerated rise of the 5xx rate over main (absolute): promotion needs the upper bound within
    it, a rollback the lower bound beyond it."""
    max_p50_ratio: float = Field(1.25, ge=1)
    """Tolerated candidate/main ratio of typical latency (geometric mean, the median of a log-normal)."""
    max_p99_ratio: float = Field(1.5, ge=1)
    """Tail: at most 1% of the candidate's requests (5% with fewer than 1,000 on main) may be slower
    than this times main's p99 (p95)."""
    warmup_seconds: float = Field(0.0, ge=0)
    """Latency is judged from this long after the candidate's first request of a step (on both
    sides), as Argo Rollouts' initialDelay: a pod that has just become ready may answer slowly
    for a moment (CPU throttled while it starts), which is not the version's latency. Errors
    count from the first request. kubeloop's predictors warm themselves up before they report
    ready, so the default judges every request."""
    min_latency_increase_ms: float = Field(5.0, ge=0)
    """A latency rise smaller than this (typical or tail) is always tolerated."""
    max_psi: float = Field(0.2, ge=0)
    """Tolerated PSI of the candidate's served scores against its own validation scores (what
    calibration set its operating point on; multi-class: the worst class), less the PSI that
    sampling alone gives. Never against main's: main may be the one that drifted."""
    min_recall: float | None = Field(None, ge=0, le=1)
    """Floor on the candidate's recall on labeled rows at its operating point: a rollback when its
    upper bound is below it (none: not judged). Multi-class: of the class its operating point
    thresholds, else of dataset.positive_value; with neither, the macro recall."""
    min_specificity: float | None = Field(None, ge=0, le=1)
    """Floor on the candidate's specificity on labeled rows, as min_recall (none: not judged)."""
    interval_seconds: float = Field(60.0, gt=0)
    """How often an automatic rollout (`kubeloop serve --auto`, the operator) analyses and steps."""
