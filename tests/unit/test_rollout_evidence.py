"""The statistics behind rollout verdicts: always-valid bounds under repeated looks, and the power
calculation that sizes each step."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from components.common.rollout_config import RolloutAnalysis
from components.common.tasks import default_task
from components.common.tasks.ranking import roc_auc
from components.deploy.power import auc_variance, needs, positives_needed
from components.deploy.quality import Labeled, compare
from components.deploy.sequential import bounds, halfwidth, planned_se, width_factor


def test_the_bounds_hold_at_every_look_where_a_fixed_test_does_not() -> None:
    # Brownian motion in information time, looked at 400 times: the always-valid upper bound is
    # crossed by chance at most alpha of the time; a one-sided z-test read at every look is not.
    rng = np.random.default_rng(0)
    looks = np.arange(1, 401)
    paths = np.cumsum(rng.normal(size=(5000, len(looks))), axis=1)
    boundary = np.array([halfwidth(1 / math.sqrt(i), 0.05, 1 / math.sqrt(100)) * i for i in looks])
    always_valid = float((paths > boundary).any(axis=1).mean())
    peeking = float((paths > norm.ppf(0.95) * np.sqrt(looks)).any(axis=1).mean())
    assert always_valid <= 0.05 and peeking > 0.3, (always_valid, peeking)


def test_the_bound_is_tightest_where_it_was_tuned() -> None:
    assert halfwidth(1.0, 0.05, 1.0) == pytest.approx(width_factor(0.05))
    assert 2.5 < width_factor(0.05) < 3.0 and width_factor(0.01) > width_factor(0.05)
    widths = [halfwidth(se, 0.05, 0.01) / se for se in (0.1, 0.03, 0.01, 0.003, 0.001)]
    assert min(widths) == pytest.approx(widths[2])
    assert planned_se(0.02, 0.05, 0.8) == pytest.approx(0.02 / (width_factor(0.05) + norm.ppf(0.8)))
    b = bounds(-0.01, 0.005, 0.05, 0.005)
    assert b.lower < -0.01 < b.upper and b.upper - b.estimate == pytest.approx(b.estimate - b.lower)


def test_the_auc_variance_formula_matches_the_spread_of_simulated_aucs() -> None:
    rng = np.random.default_rng(1)
    mu = math.sqrt(2) * norm.ppf(0.85)
    values = []
    for _ in range(400):
        y = np.r_[np.ones(60), np.zeros(1940)].astype(int)
        values.append(roc_auc(y, rng.normal(size=len(y)) + mu * y))
    assert np.mean(values) == pytest.approx(0.85, abs=0.01)
    assert auc_variance(0.85, 60, 1940) == pytest.approx(np.var(values), rel=0.2)


def test_a_shadow_needs_far_fewer_positives_than_a_canary_and_a_wider_margin_fewer_still() -> None:
    s = RolloutAnalysis()
    paired = positives_needed(s, 0.85, 0.03, paired=True, main_per_candidate=0)
    canary = positives_needed(s, 0.85, 0.03, paired=False, main_per_candidate=9)
    wide = positives_needed(RolloutAnalysis(margin=0.04), 0.85, 0.03, paired=True, main_per_candidate=0)
    assert paired < canary / 1.5 and wide == pytest.approx(paired / 4, rel=0.05)
    told = needs(s, "ROC AUC", 600, 17, None, None, 0.85, 0.03, False, 9, candidate_rate=10.0)
    assert told.labeled_rows == pytest.approx(told.positives / 0.03, rel=0.01) and told.eta_seconds
    sentence = told.sentence("holding at 10%")
    assert sentence.startswith(f"need ~{told.labeled_rows:,} labeled rows with {told.positives:,} positives")
    assert "have 600 with 17" in sentence and sentence.endswith("holding at 10%")
    never = needs(RolloutAnalysis(label_share=0.5), "ROC AUC", 0, 0, None, None, 0.85, 0.03, True, 0, 5.0)
    assert never.requests == 2 * never.labeled_rows


def test_a_candidate_worse_by_the_margin_is_rarely_shown_non_inferior_however_often_one_looks() -> None:
    # 200 shadows worse than main by exactly the margin, each judged after every 1,500 paired
    # rows for 12 looks: the non-inferiority bound may clear -margin at most about alpha of the time.
    s = RolloutAnalysis(margin=0.05, min_labeled_positives=20)
    task = default_task()
    mu_main, mu_worse = (math.sqrt(2) * norm.ppf(a) for a in (0.85, 0.80))
    promoted = 0
    for path in range(200):
        rng = np.random.default_rng(path)
        rows = 1500 * 12
        y = (rng.random(rows) < 0.1).astype(np.int64)
        noise = rng.multivariate_normal([0, 0], [[1, 0.7], [0.7, 1]], rows)
        main, worse = mu_main * y + noise[:, 0], mu_worse * y + noise[:, 1]
        for look in range(1, 13):
            n = 1500 * look
            sides = [Labeled(y[:n], scores[:n, None], np.zeros(n, np.int64)) for scores in (main, worse)]
            result = compare(task, sides[0], sides[1], s, paired=True)
            if result.bounds is not None and result.bounds.lower >= -s.margin:
                promoted += 1
                break
    assert promoted <= 16, promoted  # 8% of 200: alpha 5% plus sampling slack
