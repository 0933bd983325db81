"""The `monitoring` config section: drift checks on logged traffic, the trigger, retraining."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.common.config_section import Section

DURATION = r"^[1-9][0-9]*[smhd]$"
"""A duration such as 90s, 10m, 1h or 7d."""


def duration_seconds(text: str) -> int:
    """Seconds of a duration such as 90s, 10m, 1h or 7d.

    Raises:
        ValueError: The text is not a positive whole number followed by s, m, h or d.
    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if not text or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise ValueError(f"duration {text!r} is not like 90s, 10m, 1h or 7d")
    return int(text[:-1]) * units[text[-1]]


DriftTest = Literal["ks", "chisquare", "z", "wasserstein", "jensenshannon"]


class FeatureDrift(Section):
    """One feature's own drift settings (unset: Evidently's default test and threshold)."""

    test: DriftTest | None = None
    """Drift test of this feature; default: Evidently's choice by column type and reference size."""
    threshold: float | None = Field(None, gt=0)
    """p-value (ks, chisquare, z) or distance (wasserstein, jensenshannon) at which it drifts."""
    ignore: bool = False
    """Leave this feature out of the drift check and the drifted share."""


class PerformanceDecay(Section):
    """Metrics on served rows whose labels arrived, against the model card's."""

    enabled: bool = True
    """Check performance when labels exist (files under labels/<model>/ in the store)."""
    window: str = Field("7d", pattern=DURATION)
    """Served rows from this long before a window's end are joined with their labels."""
    min_labeled: int = Field(200, ge=1)
    """Labeled rows needed before any performance verdict."""
    min_positives: int = Field(10, ge=1)
    """Positive labels needed before recall and ROC AUC are judged (rare positives)."""
    max_drop: dict[str, float] | None = None
    """Largest tolerated drop of each metric below the model card's (absolute), any metric of
    the task where higher is better. Default: {roc_auc: 0.05, recall: 0.1} (binary),
    {roc_auc: 0.05, macro_recall: 0.1} (multiclass)."""


class EmbeddingDriftConfig(Section):
    """Drift of the served embeddings (image models) against the version's held-out images'."""

    method: Literal["model", "mmd", "distance", "ratio"] = "model"
    """Evidently's methods (components/monitor/embedding_drift.py): a domain classifier's ROC
    AUC (the default), MMD, the distance of the means, the share of drifted components."""
    threshold: float | None = Field(None, gt=0)
    """The method's threshold; default Evidently's (0.55, 0.015, 0.2, 0.2)."""
    bootstrap: bool | None = None
    """Judge against the score's null distribution; default: the model method below 1,000
    reference rows, as Evidently."""


class TriggerConfig(Section):
    """When a verdict starts a retraining run."""

    on: list[Literal["data_drift", "embedding_drift", "prediction_drift", "performance"]] = Field(
        default_factory=lambda: ["data_drift", "embedding_drift", "performance"]  # type: ignore[arg-type]
    )
    """Which findings start a run (prediction drift alone is reported, by default;
    embedding drift comes from image models, whose versions keep their embeddings)."""
    dry_run: bool = False
    """Record what would be started, start nothing."""
    cooldown_minutes: int = Field(360, ge=0)
    """Minimum time between two retraining runs."""
    max_runs_per_day: int = Field(2, ge=0)
    """Most runs started in any 24 hours (0: never start one)."""
    pipeline_version: str | None = None
    """Cluster: the registered retraining pipeline version id to run (default: its latest)."""
    experiment: str = "kubeloop-retraining"
    """Cluster: KFP experiment the triggered runs go to."""


class RetrainingConfig(Section):
    """What a retraining run trains on and how its model goes out."""

    traffic_window: str = Field("7d", pattern=DURATION)
    """Labeled served rows from this long before the trigger join the training data."""
    traffic_share: float = Field(0.5, ge=0, le=1)
    """Largest share of the new training set taken from labeled traffic (the rest: the reference data)."""
    min_traffic_rows: int = Field(0, ge=0)
    """Retrain only with at least this many labeled served rows (0: the reference data alone will do)."""
    deploy: Literal["shadow", "canary", "shadow-canary", "none"] = "shadow"
    """How the retrained version goes out: as a shadow, a canary, a shadow then a canary, or not at all."""
    split: Literal["random", "temporal", "group"] | None = None
    """Split of the retraining set (default: dataset.split.strategy). A temporal split puts the
    newest rows, the labeled traffic, in the held-out sets: while traffic is at most their share,
    the new population is judged but never trained on. random (stratified) puts it in every split."""
    schedule: str | None = None
    """Cron schedule (UTC) of retraining regardless of drift (`kubeloop schedule`; on a cluster, the
    RetrainPolicy's KFP recurring run), e.g. "0 3 * * 1"."""
    warm_start: bool = False
    """Start the retrained model from the production version's weights (training.init_from);
    its lineage names the source version."""
    warm_start_epochs: int | None = Field(None, ge=1)
    """Epochs of a warm-started retraining run (default: training.epochs): a model that starts
    from production's weights needs fewer to learn what the new data adds."""
    warm_start_learning_rate: float | None = Field(None, gt=0)
    """Learning rate of a warm-started retraining run (default: training.learning_rate): a
    smaller one keeps what production learnt while the new data moves it."""


class MonitoringConfig(Section):
    """Drift checks on logged traffic and the retraining trigger."""

    window: str = Field("1h", pattern=DURATION)
    """Length of each traffic window checked (90s, 10m, 1h, 1d)."""
    late_seconds: float = Field(60.0, ge=0)
    """A window is checked this long after it ends, so batches still being written are in it."""
    predictors: list[str] = Field(default_factory=lambda: ["main", "canary"])
    """Predictors whose logged traffic is checked (a shadow sees main's requests again)."""
    min_rows: int = Field(100, ge=1)
    """Rows a window needs before any verdict; fewer: the window is reported too small."""
    drift_share: float = Field(0.5, gt=0, le=1)
    """Dataset drift when at least this share of features drift."""
    features: dict[str, FeatureDrift] = Field(default_factory=dict)
    """Per-feature test, threshold or ignore."""
    embedding_drift: EmbeddingDriftConfig = Field(default_factory=lambda: EmbeddingDriftConfig())
    """How served embeddings are compared with the version's (where it keeps them)."""
    prediction_drift: bool = True
    """Also test the served probabilities and decisions against the version's test-split answers."""
    performance: PerformanceDecay = Field(default_factory=lambda: PerformanceDecay())
    """Performance decay once labels arrive."""
    trigger: TriggerConfig = Field(default_factory=lambda: TriggerConfig())
    """What starts a retraining run, and how often one may start."""
    retraining: RetrainingConfig = Field(default_factory=lambda: RetrainingConfig())
    """The retraining run's data and rollout."""
    schedule: str = "0 * * * *"
    """Cron schedule (UTC) of the drift check (the CronJob, the monitoring recurring run)."""
