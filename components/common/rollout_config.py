"""The rollout analysis settings: the one definition the config, the analysis and the CRD share."""

from __future__ import annotations

from pydantic import Field

from components.common.config_section import Section


class RolloutAnalysis(Section):
    """When a canary or shadow is promoted, held or rolled back (read from request logs and labels)."""

    min_requests: int = Field(200, ge=1)
    """Requests each side needs before any verdict; fewer: hold."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Significance level of the error-rate and latency tests."""
    max_error_increase: float = Field(0.01, ge=0, le=1)
    """Largest tolerated rise of the 5xx rate over main (with a significant test)."""
    max_p50_ratio: float = Field(1.25, ge=1)
    """Largest tolerated candidate/main median latency ratio (with a significant test)."""
    max_p99_ratio: float = Field(1.5, ge=1)
    """Largest tolerated candidate/main tail latency ratio: p99 from 1,000 requests, p95 from 200."""
    min_latency_increase_ms: float = Field(5.0, ge=0)
    """A latency rise smaller than this (median or tail) is never a regression."""
    max_psi: float = Field(0.2, ge=0)
    """Largest tolerated PSI of the candidate's scores against main's (multi-class: each class's
    probability; the worst class is judged)."""
    min_agreement: float = Field(0.95, ge=0, le=1)
    """Shadow: smallest share of paired rows with the same decision as main."""
    min_correlation: float = Field(0.9, ge=-1, le=1)
    """Shadow: smallest Pearson correlation of paired probabilities (multi-class: the lowest over
    the classes)."""
    min_labeled: int = Field(200, ge=1)
    """Labeled served rows (labels/<model>/) each side needs before ROC AUC and the floors judge
    the candidate; until then agreement, correlation and score shift do, which take main as right."""
    min_labeled_positives: int = Field(10, ge=1)
    """Positive labels among them (positives are rare: AUC and recall need some); multi-class: rows
    of the rarest class."""
    max_auc_drop: float = Field(0.02, ge=0, le=1)
    """Largest tolerated drop of ROC AUC (multi-class: macro one-vs-rest) below main's on labeled
    rows (the bootstrap's upper bound)."""
    min_recall: float | None = Field(None, ge=0, le=1)
    """Smallest recall of the candidate on labeled rows at its operating point (none: not judged).
    Multi-class: of the class its operating point thresholds, else of dataset.positive_value;
    with neither, the macro recall."""
    min_specificity: float | None = Field(None, ge=0, le=1)
    """Smallest specificity of the candidate on labeled rows (none: not judged). Multi-class: the
    share of other classes' rows not called the class min_recall reads, else the macro average."""
    interval_seconds: float = Field(60.0, gt=0)
    """How often an automatic rollout (`kubeloop serve --auto`, the operator) analyses and steps."""
