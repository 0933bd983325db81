"""ROC and precision-recall plots for the model card, with the operating point marked."""

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
