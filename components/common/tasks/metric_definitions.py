"""What each reported metric means, as computed (the documentation's metrics page is generated
from these; a test keeps every metric a task reports defined here)."""

from __future__ import annotations

BINARY = {
    "recall": "TP / (TP + FN) at the operating threshold: the share of positive cases flagged (sensitivity).",
    "specificity": "TN / (TN + FP): the share of negative cases not flagged.",
    "precision": "TP / (TP + FP): the share of flagged cases that are positive (PPV).",
    "npv": "TN / (TN + FN): the share of cases not flagged that are negative.",
    "f1": "2 TP / (2 TP + FP + FN): the harmonic mean of precision and recall.",
    "balanced_accuracy": "(recall + specificity) / 2.",
    "accuracy": "(TP + TN) / N.",
    "roc_auc": "Area under the ROC curve of the calibrated scores: the chance that a random positive "
    "scores above a random negative (ties count half). Threshold-free.",
    "pr_auc": "Average precision: the mean of the precision at each positive's score, the area under "
    "the precision-recall curve as scikit-learn's average_precision_score computes it. Threshold-free.",
    "brier": "Mean of (p - y)^2 over rows: p the calibrated probability, y 1 for a positive.",
    "log_loss": "-mean(y log p + (1 - y) log(1 - p)), p clipped to [eps, 1 - eps] of float64.",
}
"""Binary tasks: TP, FP, TN, FN count rows at or above (flagged) and below the threshold."""

MULTICLASS = {
    "accuracy": "The share of rows whose highest-probability class is the label.",
    "balanced_accuracy": "The mean over classes of each class's recall.",
    "macro_precision": "The unweighted mean over classes of one-vs-rest precision (argmax decisions).",
    "macro_recall": "The unweighted mean over classes of one-vs-rest recall.",
    "macro_f1": "The unweighted mean over classes of one-vs-rest F1.",
    "weighted_precision": "One-vs-rest precision averaged with each class's share of the rows as weight.",
    "weighted_recall": "One-vs-rest recall averaged with each class's share of the rows as weight.",
    "weighted_f1": "One-vs-rest F1 averaged with each class's share of the rows as weight.",
    "roc_auc": "One-vs-rest ROC AUC of each class's probability, macro-averaged.",
    "pr_auc": "One-vs-rest average precision of each class's probability, macro-averaged.",
    "log_loss": "-mean(log p_label), probabilities clipped to [eps, 1 - eps] of float64.",
    "brier": "Mean over rows of the sum over classes of (p_k - [label = k])^2 (0 to 2).",
    "top_2_accuracy": "The share of rows whose label is among the two highest-probability classes.",
}
"""Multi-class tasks: whole-table metrics; decisions are the argmax class unless an operating
point for a class of interest says otherwise."""

PER_CLASS = {
    "precision": "precision_<class>: one-vs-rest precision of that class.",
    "recall": "recall_<class>: one-vs-rest recall of that class.",
    "f1": "f1_<class>: one-vs-rest F1 of that class.",
    "roc_auc": "roc_auc_<class>: ROC AUC of that class's probability against the rest.",
    "pr_auc": "pr_auc_<class>: average precision of that class's probability against the rest.",
}
"""Multi-class tasks: the same metric for each class, named `<metric>_<class>`."""

CALIBRATION = {
    "ece": "Expected calibration error: over 15 equal-width bins of the (top-label) probability, the "
    "row-weighted mean of |mean probability - observed frequency|.",
    "mce": "Maximum calibration error: the largest of those per-bin gaps.",
    "classwise_ece": "Multi-class: the mean over classes of each class's own ECE (one-vs-rest).",
    "brier": "As in the task's metrics, before and after calibration.",
    "nll": "Negative log-likelihood: the log loss, before and after calibration.",
}
"""calibration.json's `before` and `after`, on the calibration split."""
