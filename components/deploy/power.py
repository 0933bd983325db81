"""How much labeled evidence a quality verdict needs: the power calculation of a rollout step.

The non-inferiority bound (quality.py) clears -margin once its standard error falls to
`sequential.planned_se`. Before any bound exists, the rows that takes come from the variance of
the metric at the expected prevalence and quality: DeLong's variance for binormal ROC AUC,
the binomial one for recall; a shadow's paired rows share most of their noise (a correlation
of 0.7 between the two versions' estimates is assumed until the rows say more). Once bounds
exist, the variance seen so far is scaled: it falls as one over the rows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from components.common.rollout_config import RolloutAnalysis
from components.deploy.sequential import planned_se, width_factor

PAIRED_CORRELATION = 0.7
"""Assumed correlation of two versions' metric estimates on the same rows, before data."""


def _nodes() -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(64)
    return x, w / w.sum()


NODES = _nodes()
"""Gauss-Hermite nodes and weights for expectations over a standard normal."""


def auc_variance(auc: float, positives: float, negatives: float) -> float:
    """The variance of an ROC AUC estimate for binormal scores of equal spread: DeLong's
    asymptotic variance, var(V10) / positives + var(V01) / negatives, with the placement values'
    variances integrated exactly (Hanley and McNeil's formula, which assumes exponential scores,
    gave 1.75 times the variance simulated binormal AUCs of 0.85 showed)."""
    a = math.sqrt(2) * float(norm.ppf(min(max(auc, 0.501), 0.999)))
    x, w = NODES
    v10, v01 = norm.cdf(a + x), norm.cdf(a - x)  # a positive's share of negatives below it; and back
    var10 = float(w @ v10**2 - (w @ v10) ** 2)
    var01 = float(w @ v01**2 - (w @ v01) ** 2)
    return var10 / positives + var01 / negatives


def _variance(metric: str, expected: float, positives: float, prevalence: float) -> float:
    if metric == "recall":
        return expected * (1 - expected) / positives
    negatives = positives * (1 - prevalence) / prevalence
    return auc_variance(expected, positives, negatives)


def positives_needed(
    s: RolloutAnalysis, expected: float, prevalence: float, paired: bool, main_per_candidate: float
) -> int:
    """Labeled positives on the candidate's side for the difference's standard error to reach
    the planned one (main has `main_per_candidate` times as many rows in a canary)."""
    target = planned_se(s.margin, s.alpha, s.power) ** 2

    def variance(p: float) -> float:
        if paired:
            return 2 * (1 - PAIRED_CORRELATION) * _variance(s.quality_metric, expected, p, prevalence)
        main = p * max(main_per_candidate, 1e-9)
        return _variance(s.quality_metric, expected, p, prevalence) + _variance(
            s.quality_metric, expected, main, prevalence
        )

    low, high = 2.0, 2.0
    while variance(high) > target and high < 1e9:
        high *= 2
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if variance(middle) > target else (low, middle)
    return max(int(math.ceil(high)), s.min_labeled_positives)


@dataclass(frozen=True)
class Needs:
    """The evidence a quality verdict needs and what has arrived, on the candidate's side."""

    metric: str
    margin: float
    labeled_rows: int
    positives: int
    have_rows: int
    have_positives: int
    requests: int
    """Served requests that many labeled rows take at the label share."""
    eta_seconds: float | None
    """Time until they are labeled at the candidate's current rate (None: no rate yet, or labels
    never arrive)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as recorded with the verdict."""
        return asdict(self)

    def sentence(self, holding: str) -> str:
        """In plain words, for the verdict, the status and the loop's index."""
        text = (
            f"need ~{self.labeled_rows:,} labeled rows with {self.positives:,} positives to judge a "
            f"{self.margin:g} {self.metric} margin; have {self.have_rows:,} with {self.have_positives:,}"
        )
        if self.eta_seconds is not None and self.labeled_rows > self.have_rows:
            text += f" (about {duration(self.eta_seconds)} more at the current traffic and label delay)"
        return f"{text}; {holding}"


def duration(seconds: float) -> str:
    """A rough duration in the largest sensible unit."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def needs(
    s: RolloutAnalysis,
    what: str,
    have_rows: int,
    have_positives: int,
    se_now: float | None,
    estimate: float | None,
    expected: float,
    prevalence: float,
    paired: bool,
    main_per_candidate: float,
    candidate_rate: float | None,
) -> Needs:
    """The evidence the step needs.

    Args:
        s: The analysis settings (margin, alpha, power, metric, label share and delay).
        what: The metric in words (e.g. "ROC AUC").
        have_rows: Labeled rows on the candidate's side so far.
        have_positives: Positives among them.
        se_now: The standard error of the difference now (None: no bounds yet).
        estimate: The difference candidate - main now (None: no bounds yet).
        expected: The expected metric (the candidate's registered one).
        prevalence: Share of positives among labeled rows.
        paired: Whether the rows are paired (a shadow).
        main_per_candidate: Main's rows per candidate row (a canary at 10%: 9).
        candidate_rate: Candidate rows served per second at the current weight.
    """
    if se_now is not None and estimate is not None and have_rows:
        # The bound must close the gap between the estimate and -margin, from either side.
        gap = max(abs(estimate + s.margin), s.margin / 20)
        target = min(gap / width_factor(s.alpha), se_now)
        rows = int(math.ceil(have_rows * (se_now / target) ** 2))
        positives = int(math.ceil(rows * have_positives / have_rows))
    else:
        positives = positives_needed(s, expected, prevalence, paired, main_per_candidate)
        rows = int(math.ceil(positives / max(prevalence, 1e-6)))
    requests = int(math.ceil(rows / s.label_share)) if s.label_share > 0 else 0
    eta = None
    if candidate_rate and s.label_share > 0:
        missing = max(rows - have_rows, 0) / s.label_share
        eta = missing / candidate_rate + s.label_delay_seconds
    return Needs(what, s.margin, rows, positives, have_rows, have_positives, requests, eta)
