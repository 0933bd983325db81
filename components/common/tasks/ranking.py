"""ROC-AUC and average precision on weighted rows, for many weight vectors at once (numpy only).

A bootstrap resample is the original rows with multinomial counts as weights, so B resamples
are one (B, n) weight matrix: the scores are sorted once, and ROC-AUC and average precision
come from cumulative weighted counts per distinct score, with ties handled as scikit-learn
does.
"""

from __future__ import annotations

import numpy as np


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    return np.divide(num, den, out=np.full_like(num, np.nan, dtype=np.float64), where=den > 0)


def share(hits: np.ndarray) -> float:
    """The share of true values, NaN (without numpy's empty-slice warning) when there are none."""
    return float(np.mean(hits)) if hits.size else float("nan")


def percentile_intervals(
    samples: dict[str, list[np.ndarray]], level: float
) -> dict[str, tuple[float, float]]:
    """Percentile interval of each metric's bootstrap values (undefined resamples left out;
    (NaN, NaN) when none is defined)."""
    tail = 100 * (1 - level) / 2
    out = {}
    for name, parts in samples.items():
        values = np.concatenate(parts) if parts else np.zeros(0)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            out[name] = (float("nan"), float("nan"))
        else:
            low, high = np.percentile(values, [tail, 100 - tail])
            out[name] = (float(low), float(high))
    return out


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC from ranks (Mann-Whitney, ties at their mean rank); NaN without both classes."""
    from scipy.stats import rankdata  # not in the serving image, which never calls this

    y = np.asarray(positive, dtype=int)
    positives = int(y.sum())
    negatives = len(y) - positives
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


class Ranking:
    """One score vector sorted once; `auc` then serves any number of weight matrices.

    Everything `auc` needs of the order is indexed here, so that per weight matrix it costs
    one gather and one cumulative sum over all rows, and the rest touches the positive rows
    only (a tenth of them for one class of ten).
    """

    def __init__(self, positive: np.ndarray, score: np.ndarray) -> None:
        """Rows with 0/1 `positive` labels ranked by `score`."""
        self.order = np.argsort(score, kind="mergesort")
        ranked = np.asarray(score)[self.order]
        n = len(ranked)
        new_group = np.r_[True, ranked[1:] != ranked[:-1]]
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
        group_end = np.r_[np.flatnonzero(new_group)[1:], n][np.cumsum(new_group) - 1]  # one past
        where = np.flatnonzero(np.asarray(positive, dtype=bool)[self.order])  # sorted positions
        self.positive_at = where
        self.below = group_start[where]  # rows strictly below each positive's score
        self.to_top = group_end[where]  # rows at or below it
        self.positives_below = np.searchsorted(where, self.below)  # positives strictly below
        self.positives_to_top = np.searchsorted(where, self.to_top)  # positives at or below

    def auc(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ROC-AUC, average precision) for each row of weights `w` (B, n); NaN where undefined.

        Integer weights (bootstrap counts) may come as int32: the gather and the running sum
        over all rows then move half the bytes; the per-positive arithmetic is float64.

        ROC-AUC: each positive beats the negatives scored below it and half of those tied with
        it. Average precision: each positive adds its weight times the precision of calling
        every row scored at or above it positive (ties as one threshold, as scikit-learn).
        """
        ws = w[:, self.order]
        rows = np.zeros((w.shape[0], ws.shape[1] + 1), dtype=ws.dtype)
        np.cumsum(ws, axis=1, out=rows[:, 1:])  # rows[:, j]: weight of the j lowest-scored rows
        wp = ws[:, self.positive_at].astype(np.float64)
        pos = np.zeros((w.shape[0], wp.shape[1] + 1))
        np.cumsum(wp, axis=1, out=pos[:, 1:])
        total, positives = rows[:, -1].astype(np.float64), pos[:, -1]
        all_below = rows[:, self.below].astype(np.float64)
        all_to_top = rows[:, self.to_top].astype(np.float64)
        pos_below, pos_to_top = pos[:, self.positives_below], pos[:, self.positives_to_top]
        neg_below = all_below - pos_below
        neg_tied = (all_to_top - all_below) - (pos_to_top - pos_below)
        roc = ratio(np.einsum("bm,bm->b", wp, neg_below + 0.5 * neg_tied), positives * (total - positives))
        above = total[:, None] - all_below
        precision = np.divide(
            positives[:, None] - pos_below, above, out=np.zeros_like(above), where=above > 0
        )
        pr = ratio(np.einsum("bm,bm->b", wp, precision), positives)
        return roc, pr


def auc_influence(positive: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray]:
    """ROC AUC and each row's influence on it (DeLong's structural components, centred and
    scaled): their sum of squares is DeLong's variance, and a difference of two AUCs on the
    same rows has the variance of the rows' differences. NaN and zeros without both classes."""
    y = np.asarray(positive, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    pos, neg = s[y], s[~y]
    influence = np.zeros(len(s))
    if not len(pos) or not len(neg):
        return float("nan"), influence
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    # Each positive: the share of negatives below it, ties counting half (and each negative:
    # the share of positives above it).
    below = (np.searchsorted(neg_sorted, pos, "left") + np.searchsorted(neg_sorted, pos, "right")) / 2
    above = (
        len(pos) - (np.searchsorted(pos_sorted, neg, "left") + np.searchsorted(pos_sorted, neg, "right")) / 2
    )
    v10, v01 = below / len(neg), above / len(pos)
    auc = float(v10.mean())
    influence[y] = (v10 - auc) / len(pos)
    influence[~y] = (v01 - auc) / len(neg)
    return auc, influence


def rate_influence(hit: np.ndarray, counted: np.ndarray) -> tuple[float, np.ndarray]:
    """A rate over the counted rows (recall: decided positive among the positives) and each
    row's influence on it; NaN and zeros without a counted row."""
    counted = np.asarray(counted, dtype=bool)
    influence = np.zeros(len(counted))
    if not counted.any():
        return float("nan"), influence
    hits = np.asarray(hit, dtype=np.float64)[counted]
    rate = float(hits.mean())
    influence[counted] = (hits - rate) / counted.sum()
    return rate, influence
