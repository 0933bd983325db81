"""Evaluation plots for the model card: ROC and PR curves, ROC per class, the confusion matrix."""

from __future__ import annotations

from typing import Any

from components.common.plots import png


def roc_png(curves: dict[str, Any], point: dict[str, float], champion: dict[str, Any] | None = None) -> bytes:
    """ROC curve of the candidate (and the champion's, dashed), the operating point as a dot."""

    def draw(ax: Any) -> None:
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
        if champion is not None:
            ax.plot(champion["roc"]["fpr"], champion["roc"]["tpr"], linestyle="--", label="champion")
        ax.plot(curves["roc"]["fpr"], curves["roc"]["tpr"], label=f"candidate (AUC {point['roc_auc']:.3f})")
        ax.plot([1 - point["specificity"]], [point["recall"]], "o", color="black", label="operating point")
        ax.set(
            xlabel="1 - specificity", ylabel="recall", title="ROC (test split)", xlim=(0, 1), ylim=(0, 1.01)
        )
        ax.legend(loc="lower right")

    return png(draw)


def pr_png(curves: dict[str, Any], point: dict[str, float], champion: dict[str, Any] | None = None) -> bytes:
    """Precision-recall curve with the prevalence line (a random model's precision)."""

    def draw(ax: Any) -> None:
        prevalence = curves["pr"]["prevalence"]
        ax.axhline(prevalence, linestyle=":", color="grey", label=f"prevalence {prevalence:.3f}")
        if champion is not None:
            ax.plot(champion["pr"]["recall"], champion["pr"]["precision"], linestyle="--", label="champion")
        ax.plot(
            curves["pr"]["recall"], curves["pr"]["precision"], label=f"candidate (AP {point['pr_auc']:.3f})"
        )
        ax.plot([point["recall"]], [point["precision"]], "o", color="black", label="operating point")
        ax.set(
            xlabel="recall",
            ylabel="precision",
            title="Precision-recall (test split)",
            xlim=(0, 1),
            ylim=(0, 1.01),
        )
        ax.legend(loc="best")

    return png(draw)


def roc_per_class_png(curves: dict[str, Any], metrics: dict[str, float]) -> bytes:
    """One-vs-rest ROC curve of every class, each labelled with its AUC."""

    def draw(ax: Any) -> None:
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
        for name, roc in curves["roc_per_class"].items():
            auc = metrics.get(f"roc_auc_{name}", float("nan"))
            ax.plot(roc["fpr"], roc["tpr"], label=f"{name} (AUC {auc:.3f})")
        ax.set(
            xlabel="false positive rate (one vs rest)",
            ylabel="recall",
            title=f"ROC per class (test split; macro AUC {metrics.get('roc_auc', float('nan')):.3f})",
            xlim=(0, 1),
            ylim=(0, 1.01),
        )
        ax.legend(loc="lower right", fontsize="small")

    return png(draw)


def confusion_png(labels: list[str], matrix: list[list[int]]) -> bytes:
    """Counts per true class (rows) and decided class (columns), each cell with its row share."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)

    def draw(ax: Any) -> None:
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        ticks = range(len(labels))
        ax.set_xticks(ticks, labels, rotation=45, ha="right")
        ax.set_yticks(ticks, labels)
        for i in ticks:
            for j in ticks:
                colour = "white" if shares[i, j] > 0.6 else "black"
                text = f"{int(counts[i, j])}\n{shares[i, j]:.0%}"
                ax.text(j, i, text, ha="center", va="center", color=colour, fontsize="small")
        ax.set(
            xlabel="decided", ylabel="true", title="Confusion matrix (test split; share of each true class)"
        )

    side = max(4.0, 0.9 * len(labels) + 2.0)
    return png(draw, size=(side, side))


def evaluation_plots(
    curves: dict[str, Any],
    metrics: dict[str, float],
    labels: list[str],
    matrix: list[list[int]],
    champion: dict[str, Any] | None = None,
) -> dict[str, bytes]:
    """Every plot the curves allow, by file name: roc.png and pr.png (curves of one score, the
    champion's dashed), or roc.png per class; confusion.png always."""
    plots: dict[str, bytes] = {}
    if "roc" in curves:
        plots["roc.png"] = roc_png(curves, metrics, champion)
    if "pr" in curves:
        plots["pr.png"] = pr_png(curves, metrics, champion)
    if "roc_per_class" in curves:
        plots["roc.png"] = roc_per_class_png(curves, metrics)
    plots["confusion.png"] = confusion_png(labels, matrix)
    return plots
