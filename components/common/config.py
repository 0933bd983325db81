"""Typed project configuration: one YAML file, every section validated before any work starts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from components.common.config_section import Section
from components.common.image_config import ImageSettings
from components.common.loop_config import LoopConfig
from components.common.monitoring_config import MonitoringConfig
from components.common.rollout_config import RolloutAnalysis
from components.common.training_config import TrainingConfig

if TYPE_CHECKING:
    from components.common.modalities import Modality
    from components.common.tasks import Task


class GeneratorSpec(Section):
    """How to create the dataset file when it does not exist yet (examples, tests)."""

    function: str
    """Import path `module:function`; called as function(path=..., **params) and must write path."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments passed to the generator (rows, prevalence, seed, ...)."""


class SplitSpec(Section):
    """How rows are divided into train, validation, calibration and test sets."""

    strategy: Literal["random", "temporal", "group"] = "random"
    """random: stratified by label; temporal: train before a cutoff, evaluate after it;
    group: no value of `dataset.group_column` appears on both sides."""
    validation_fraction: float = Field(0.15, gt=0, lt=1)
    """Share of rows for early stopping and model selection."""
    calibration_fraction: float = Field(0.15, gt=0, lt=1)
    """Share of rows kept apart to fit the calibration."""
    test_fraction: float = Field(0.2, gt=0, lt=1)
    """Share of rows held out for evaluation and the gate."""
    cutoff: str | None = None
    """temporal only: ISO timestamp; rows at or after it form the test set. Default: the
    time quantile that leaves `test_fraction` of rows after it."""
    seed: int = 0
    """Seed of the random and group splits."""

    @model_validator(mode="after")
    def _fractions_leave_training_rows(self) -> SplitSpec:
        held_out = self.validation_fraction + self.calibration_fraction + self.test_fraction
        if held_out >= 0.9:
            raise ValueError(
                f"validation + calibration + test fractions sum to {held_out:.2f}, leaving "
                f"{1 - held_out:.2f} for training; lower them so the sum is below 0.9"
            )
        return self


class DatasetConfig(Section):
    """Where the data is and what its columns mean."""

    path: str
    """CSV or Parquet file: a local path (relative to the config file) or s3://bucket/key."""
    modality: Literal["tabular", "images"] = "tabular"
    """The kind of data: tabular (a table of feature columns) or images (a manifest table with
    one image per row, its label and metadata columns)."""
    image_column: str = "image"
    """images: the manifest column holding each image's path (relative to the manifest, a
    local path, or s3://bucket/key)."""
    image: ImageSettings = Field(default_factory=ImageSettings)
    """images: the model's input size, fitting, normalisation, augmentation and the gate's bounds."""
    label: str
    """Name of the label column."""
    task: Literal["binary", "multiclass"] = "binary"
    """binary: a positive class against the rest (one probability); multiclass: one of two or
    more classes (a probability per class)."""
    positive_value: int | str | None = None
    """binary: the label value of a positive case (e.g. disease present; default 1).
    multiclass: the class of interest (its share is the prevalence the gate bounds), if any."""
    classes: list[str] | None = None
    """multiclass: the classes in output order; a label outside them fails the gate. Default:
    the sorted labels of the training split."""
    features: list[str] | None = None
    """Feature columns. Default: every column except label, id, time and group columns."""
    categorical: list[str] | None = None
    """Features that hold categories (encoded from the training split's categories). Default:
    inferred, and reported: text and boolean columns, and integer columns of at most 10 codes."""
    id_column: str | None = None
    """Row identifier, never used as a feature."""
    time_column: str | None = None
    """Timestamp column (ISO 8601 text or a datetime type); required by the temporal split."""
    group_column: str | None = None
    """Patient/site id; required by the group split."""
    device_column: str | None = None
    """The acquisition device of each row (scanner, site, model; a table may also use it as a
    feature): the gate reports each device's share, modes (images: size, bit depth, channels) and property
    spread, and compares them with the reference's (a new device or mode is reported)."""
    split: SplitSpec = Field(default_factory=SplitSpec)
    """How rows are split."""
    generator: GeneratorSpec | None = None
    """Creates the file when it is missing (the bundled examples use it)."""

    def make_task(self) -> Task:
        """The `Task` of this dataset's label."""
        from components.common.tasks import task_for

        return task_for(self.task, self.label, self.positive_value, self.classes)

    def modality_settings(self) -> dict[str, Any]:
        """What the modality needs to know of this config (recorded in the dataset schema)."""
        if self.modality == "images":
            return {"image_column": self.image_column, "image": self.image.model_dump(mode="json")}
        return {}

    def make_modality(self) -> Modality:
        """The `Modality` of this dataset."""
        from components.common.modalities import modality_for

        return modality_for(self.modality, self.modality_settings())

    @model_validator(mode="before")
    @classmethod
    def _image_features(cls, data: Any) -> Any:
        """An image manifest's one feature is its image column (metadata columns are for slices)."""
        if isinstance(data, dict) and data.get("modality") == "images":
            image_column = data.get("image_column", "image")
            data = {"features": [image_column], "categorical": [], **data}
        return data

    @model_validator(mode="after")
    def _split_needs_columns(self) -> DatasetConfig:
        if self.split.strategy == "temporal" and not self.time_column:
            raise ValueError("split.strategy 'temporal' needs dataset.time_column; set it")
        if self.split.strategy == "group" and not self.group_column:
            raise ValueError("split.strategy 'group' needs dataset.group_column; set it")
        if self.features is not None and self.label in self.features:
            raise ValueError(f"the label '{self.label}' is listed in features; remove it")
        declared = set(self.categorical or [])
        unknown = declared - set(self.features or declared)
        if unknown:
            raise ValueError(f"categorical columns {sorted(unknown)} are not in features")
        if self.classes is not None and self.task != "multiclass":
            raise ValueError("dataset.classes needs task: multiclass (a binary label has a positive_value)")
        if self.classes is not None and (
            len(set(self.classes)) < 2 or len(set(self.classes)) != len(self.classes)
        ):
            raise ValueError(f"dataset.classes {self.classes} must name at least two distinct classes")
        return self


Severity = Literal["error", "warning"]


class ColumnRule(Section):
    """Expectations declared for one column; `severity` decides whether a failure blocks."""

    type: Literal["number", "integer", "string", "boolean", "datetime"] | None = None
    """Required dtype family; a flip (e.g. numbers read as text) fails the check."""
    min: float | None = None
    """Smallest allowed value (inclusive)."""
    max: float | None = None
    """Largest allowed value (inclusive)."""
    allowed: list[str | int | float] | None = None
    """The only values the column may hold (categories, codes)."""
    allowed_share: float = Field(1.0, gt=0, le=1)
    """With `allowed`: the smallest share of non-null values that must be allowed (1: all)."""
    max_null_fraction: float | None = Field(None, ge=0, le=1)
    """Highest share of missing values; overrides validation.max_null_fraction."""
    unique: bool = False
    """Every value must be distinct (ids)."""
    severity: Severity = "error"
    """error: a failure stops the pipeline; warning: it is reported and the run continues."""


class PrevalenceBounds(Section):
    """Accepted share of positive labels (a 1% screening set is not a 50% diagnostic one)."""

    min: float = Field(0.0, ge=0, le=1)
    """Lowest accepted share of positives."""
    max: float = Field(1.0, ge=0, le=1)
    """Highest accepted share of positives."""
    severity: Severity = "error"
    """Whether a prevalence outside the bounds blocks the pipeline."""


class ProfileTolerances(Section):
    """How far new data may stray from the reference profile (the champion's training data)."""

    use_champion: bool = True
    """Validate against the profile saved with the production model, when there is one."""
    reference_data: str | None = None
    """A trusted dataset to profile instead (path or s3:// URI); overrides the champion's."""
    range_margin: float = Field(0.1, ge=0)
    """The batch's 1% and 99% quantiles may move this share of the reference's
    1-99% width (a shifted or stretched distribution fails)."""
    null_increase: float = Field(0.01, ge=0, le=1)
    """Allowed rise of a column's null share over the reference (a null burst beyond fails)."""
    prevalence_factor: float = Field(2.0, ge=1)
    """Prevalence must stay within [reference / factor, reference x factor]."""
    range_severity: Severity = "warning"
    """Tails moved beyond the band: warning (new data may shift) or error."""
    device_shift: float = Field(0.25, ge=0)
    """A device's median of a measured property may move this share of the reference
    device's 5-95% width; further is a shift (severity `range_severity`), as is a new mode."""
    unseen_categories: Severity = "warning"
    """Categories the reference never had (e.g. a new scanner): warning or error."""
    column_order: Severity | Literal["ignore"] = "warning"
    """Reference columns arriving in another order (a sign the upstream export changed)."""
    severity: Severity = "error"
    """Missing columns, dtype flips, null bursts and prevalence shifts."""


class ValidationConfig(Section):
    """The data gate that runs before training (Great Expectations is the engine)."""

    min_rows: int = Field(100, ge=1)
    """Fewer rows than this fails the gate."""
    max_rows: int | None = Field(None, ge=1)
    """More rows than this fails the gate (catches accidental joins that multiply rows)."""
    max_null_fraction: float = Field(0.5, ge=0, le=1)
    """Highest share of missing values allowed in a feature (training imputes them: the median
    and a missing-indicator for numbers, a "(missing)" category for categories). The label may
    have none. 0.0: no gaps at all (a source that should be complete)."""
    allow_extra_columns: bool = True
    """Whether columns not named in the config may appear (they are ignored)."""
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    """Declared expectations per column name."""
    prevalence: PrevalenceBounds | None = None
    """Accepted share of positive labels; unchecked when absent."""
    min_class_share: float | None = Field(None, gt=0, lt=1)
    """Every label value must hold at least this share of the rows (a class too rare to learn
    or to evaluate fails the gate, named with its rows); unchecked when absent."""
    max_duplicate_fraction: float | None = Field(None, ge=0, le=1)
    """Highest share of rows that repeat an earlier row (ignoring the id column)."""
    constant_columns: Severity | Literal["ignore"] = "warning"
    """A feature with a single value carries no signal: report it at this severity."""
    max_split_overlap: float = Field(0.01, ge=0, le=1)
    """Highest share of held-out rows whose features and label also appear in train (leakage);
    a few exact repeats are normal in tables of coarse features, and are reported below it."""
    profile: ProfileTolerances = Field(default_factory=ProfileTolerances)
    """Checks against a reference profile of trusted data."""
    group_overlap: Severity | Literal["ignore"] = "warning"
    """A dataset.group_column value (patient, site) in train and a held-out split: report it
    at this severity (the group split rules it out by construction)."""


class SliceSpec(Section):
    """A column to report metrics by; numeric columns are cut into bins."""

    column: str
    """Column of the test split (e.g. scanner, site_id, age)."""
    bins: list[float] | None = None
    """Bin edges for a numeric column, e.g. [0, 50, 65, 120] (left-closed); null: one slice per value."""

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value  # `slices: [scanner]`

    @model_validator(mode="after")
    def _bins_increase(self) -> SliceSpec:
        if self.bins is not None and (len(self.bins) < 2 or self.bins != sorted(set(self.bins))):
            raise ValueError(f"bins {self.bins} must be at least two strictly increasing edges")
        return self


class EvaluationConfig(Section):
    """Held-out metrics and the gate a model must pass to be registered."""

    threshold: float = Field(0.5, gt=0, lt=1)
    """Calibrated probability at or above which a case is called positive, used when
    calibration sets no target_recall or target_specificity."""
    min_recall: float | None = Field(None, ge=0, le=1)
    """Gate: lowest acceptable recall (sensitivity) on the test split."""
    min_precision: float | None = Field(None, ge=0, le=1)
    """Gate: lowest acceptable precision (PPV) on the test split."""
    min_roc_auc: float | None = Field(None, ge=0, le=1)
    """Gate: lowest acceptable ROC-AUC on the test split."""
    floors: dict[str, float] = Field(default_factory=dict)
    """Gate: lowest acceptable value per metric, e.g. {macro_recall: 0.8, recall_malignant: 0.95}
    (any metric where higher is better; min_recall, min_precision and min_roc_auc are shorthands)."""
    baseline: bool = True
    """Fit a logistic regression on the same split and report it beside the model."""
    must_beat_baseline: bool = False
    """Gate: the model's ROC-AUC must be at least the baseline's (needs baseline: true)."""
    slices: list[SliceSpec] = Field(default_factory=list)
    """Columns to report metrics by: names, or {column, bins} for numeric ones."""
    primary_metric: str | None = None
    """Metric whose worst slice is reported (and gated by max_slice_gap); one of the task's slice
    metrics. Default: recall (binary), accuracy (multiclass)."""
    max_slice_gap: float | None = Field(None, ge=0, le=1)
    """Gate: largest allowed drop of the primary metric from overall to the worst slice."""
    min_slice_rows: int = Field(30, ge=1)
    """Slices with fewer test rows are shown but not used for the worst-slice gap."""
    bootstrap_resamples: int = Field(1000, ge=0, le=100_000)
    """Bootstrap resamples of the test split for metric intervals; 0 turns intervals off."""
    confidence: float = Field(0.95, gt=0.5, lt=1)
    """Coverage of the bootstrap intervals."""
    max_regression: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.02})
    """Gate against the champion (the registry's production version, scored on the same test
    rows with its own calibration and threshold): largest allowed drop per metric. With no
    champion yet only the floors apply. {} turns the comparison off."""
    regression_rule: Literal["point", "interval"] = "point"
    """`point`: the observed drop must stay within the margin. `interval` (non-inferiority):
    the lower bound of the paired bootstrap interval of candidate - champion must too."""
    force_promote: bool = False
    """Register the model even when a gate check fails; needs force_reason. Recorded in the
    decision, the lineage and the model card (CLI: --force-promote --reason "...")."""
    force_reason: str | None = None
    """Why the gate is overridden: who decided and on what evidence."""

    def gate_floors(self) -> dict[str, float]:
        """Every floor: the shorthands, then `floors` (which wins where both name a metric)."""
        shorthands = {"recall": self.min_recall, "precision": self.min_precision, "roc_auc": self.min_roc_auc}
        return {k: v for k, v in shorthands.items() if v is not None} | dict(self.floors)

    @model_validator(mode="after")
    def _gate_needs_the_baseline(self) -> EvaluationConfig:
        if self.must_beat_baseline and not self.baseline:
            raise ValueError("must_beat_baseline needs baseline: true (there is nothing to beat)")
        if self.force_promote and not (self.force_reason or "").strip():
            raise ValueError("force_promote needs force_reason: say who overrides the gate and why")
        if self.regression_rule == "interval" and not self.bootstrap_resamples:
            raise ValueError("regression_rule: interval needs bootstrap_resamples > 0")
        for metric, margin in self.max_regression.items():
            if not 0 <= margin <= 1:
                raise ValueError(f"max_regression.{metric} = {margin}: use a drop between 0 and 1")
        for metric, floor in self.floors.items():
            if not 0 <= floor <= 1:
                raise ValueError(f"floors.{metric} = {floor}: use a value between 0 and 1")
        return self


class ClassTarget(Section):
    """A recall to reach for one class (multiclass operating points)."""

    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
        validate_by_name=True,
        serialize_by_alias=True,
    )

    class_: str = Field(alias="class")
    """The class whose calibrated probability is thresholded."""
    value: float = Field(gt=0, le=1)
    """The recall it must reach on validation."""


class CalibrationConfig(Section):
    """Turning scores into probabilities people can read as such, and the operating point."""

    method: Literal["temperature", "platt", "isotonic", "vector", "none", "auto"] = "temperature"
    """Map fitted on the calibration split. binary: temperature, platt or isotonic; multiclass:
    temperature (one T for K classes) or vector (a scale and offset per class); none keeps the
    model's own probabilities; `auto` fits every map of the task and keeps the lowest
    validation NLL (multiclass: the identity included). A binary temperature is folded into
    the ONNX graph; the other maps are applied by the serving code from calibration.json."""
    bins: int = Field(15, ge=2, le=100)
    """Equal-width bins for ECE, MCE and the reliability diagram."""
    target_recall: float | ClassTarget | None = None
    """Operating point: the highest threshold on calibrated validation scores whose recall
    reaches this. Unset (and no target_specificity): evaluation.threshold is used (multiclass:
    argmax). multiclass: {class: malignant, value: 0.95} thresholds that class's probability
    (a plain number applies to dataset.positive_value)."""
    target_specificity: float | None = Field(None, gt=0, le=1)
    """Operating point: the lowest threshold whose validation specificity reaches this."""

    @model_validator(mode="after")
    def _one_target(self) -> CalibrationConfig:
        if isinstance(self.target_recall, float) and not 0 < self.target_recall <= 1:
            raise ValueError(f"target_recall {self.target_recall} must be in (0, 1]")
        if self.target_recall is not None and self.target_specificity is not None:
            raise ValueError(
                "set target_recall or target_specificity, not both: one threshold cannot promise both"
            )
        return self


class ServingConfig(Section):
    """The predictor pods (cluster) or processes (local) and their request logs."""

    workers: int = Field(2, ge=1, le=64)
    """gunicorn worker processes per predictor (GUNICORN_WORKERS)."""
    replicas: int = Field(1, ge=1)
    """Pods per predictor on a cluster."""
    cpu: str = "500m"
    """CPU request of each predictor pod."""
    memory: str = "1Gi"
    """Memory request of each predictor pod."""
    cpu_limit: str = "2"
    """CPU limit of each predictor pod."""
    memory_limit: str = "2Gi"
    """Memory limit of each predictor pod."""
    flush_rows: int = Field(1000, ge=1)
    """Request-log rows written as soon as this many wait."""
    flush_seconds: float = Field(5.0, gt=0)
    """Request-log rows written at least this often."""
    max_rows: int = Field(10_000, ge=1)
    """Largest batch one request may carry (more: a 400)."""
    max_request_bytes: int = Field(64 * 2**20, ge=1024)
    """Largest request body (more: a 413 before it is read); on a cluster also Seldon's gRPC
    message limit (seldon.io/grpc-max-message-size). Size it for a batch of your images."""
    sample_share: float = Field(0.0, ge=0, le=1)
    """Share of served files (images) kept in the store with their request ids, so that labels
    arriving later can be joined to them for retraining (`served/<model>/<day>/`); chosen by
    content hash. 1: every file."""
    retention_days: int | None = Field(None, ge=1)
    """Delete kept served files of days older than this; unset: keep them."""
    request_timeout_seconds: float = Field(60.0, gt=0)
    """How long a request may take on a cluster (Seldon's seldon.io/rest-timeout and
    grpc-timeout; the model's gunicorn timeout follows the REST one)."""
    seldon_logger_url: str | None = None
    """Also send every request and response as CloudEvents to this sink (Seldon's own request
    logger, graph.logger mode all); kubeloop's request log is written either way."""


class DeploymentConfig(Section):
    """How a registered model reaches traffic (used by the deploy step)."""

    auto_deploy: bool = False
    """The training pipeline's deploy step rolls each registered version out (else it skips)."""
    strategy: Literal["shadow", "canary", "replace", "shadow-canary"] = "canary"
    """shadow: mirror traffic, never answer; canary: shift traffic in steps; replace: at once;
    shadow-canary: a shadow first, then the canary's steps once its verdict is promote."""
    canary_steps: list[int] = Field(default_factory=lambda: [10, 50, 100])
    """Traffic percentages of the canary, in order; the last must be 100."""
    namespace: str = "kubeloop"
    """Kubernetes namespace of the SeldonDeployment."""
    analysis: RolloutAnalysis = Field(default_factory=lambda: RolloutAnalysis())
    """Thresholds of the rollout analysis on the request logs."""
    serving: ServingConfig = Field(default_factory=lambda: ServingConfig())
    """Predictor processes, pod resources and request logging."""

    @model_validator(mode="after")
    def _steps_reach_full_traffic(self) -> DeploymentConfig:
        steps = self.canary_steps
        if not steps or steps[-1] != 100 or any(not 0 < s <= 100 for s in steps):
            raise ValueError(f"canary_steps {steps} must be percentages in (0, 100] ending at 100")
        if steps != sorted(steps):
            raise ValueError(f"canary_steps {steps} must increase")
        return self


class KubeloopConfig(Section):
    """A kubeloop project: one model, its data and how it moves to production."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    """Model name in the registry (lowercase letters, digits, '-': a Kubernetes name)."""
    store: str = ".kubeloop"
    """Artifact store: a folder (relative to the working directory) or s3://bucket/prefix."""
    dataset: DatasetConfig
    """The data."""
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    """The data gate."""
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    """The model and its training."""
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    """Metrics and the quality gate."""
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    """Probability calibration."""
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)
    """Rollout."""
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    """Drift monitoring and retraining."""
    loop: LoopConfig = Field(default_factory=LoopConfig)
    """`kubeloop loop`: the whole loop replayed on this machine (traffic phases, compressed time)."""

    @model_validator(mode="after")
    def _settings_fit_the_task(self) -> KubeloopConfig:
        problems = task_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def resolved(self) -> dict[str, Any]:
        """Every field, defaults written out, as plain JSON types."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """sha256 of the resolved config in canonical JSON (key order does not matter)."""
        text = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_json(self) -> str:
        """Canonical JSON, the form passed to pipeline steps."""
        return json.dumps(self.resolved(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KubeloopConfig:
        """Parse the JSON a pipeline step receives (already resolved and checked)."""
        return cls.model_validate_json(text)


def resolve_data_path(path: str, base_dir: Path) -> str:
    """Make a relative local dataset path absolute against the config file's folder."""
    if "://" in path or Path(path).is_absolute():
        return path
    return str((base_dir / path).resolve())


def task_problems(config: KubeloopConfig) -> list[str]:
    """Every setting that names a metric, a calibration map or a target the task lacks."""
    dataset, task = config.dataset, config.dataset.make_task()
    evaluation, calibration = config.evaluation, config.calibration
    problems = []
    for where, names in (
        ("evaluation.floors", evaluation.gate_floors()),
        ("evaluation.max_regression", evaluation.max_regression),
    ):
        unknown = [n for n in names if not task.knows_metric(n)]
        if unknown:
            problems.append(
                f"{where} names {unknown}, not metrics of a {dataset.task} task where higher is better; "
                f"use some of {', '.join(task.gated_metrics)}"
            )
    decay = config.monitoring.performance.max_drop or {}
    unknown_decay = [n for n in decay if not task.knows_metric(n)]
    if unknown_decay:
        problems.append(
            f"monitoring.performance.max_drop names {unknown_decay}, not metrics of a {dataset.task} task "
            f"where higher is better; use some of {', '.join(task.gated_metrics)}"
        )
    if evaluation.primary_metric is not None and evaluation.primary_metric not in task.slice_metrics:
        problems.append(
            f"evaluation.primary_metric {evaluation.primary_metric!r} is not reported per slice for a "
            f"{dataset.task} task; use one of {', '.join(task.slice_metrics)}"
        )
    if calibration.method not in (*task.calibration_methods, "auto"):
        problems.append(
            f"calibration.method {calibration.method!r} does not apply to a {dataset.task} task; use one of "
            f"{', '.join((*task.calibration_methods, 'auto'))}"
        )
    target = calibration.target_recall
    if calibration.target_specificity is not None and "specificity" not in task.operating_targets:
        problems.append(f"calibration.target_specificity does not apply to a {dataset.task} task; remove it")
    if isinstance(target, ClassTarget) and "class" not in task.operating_targets:
        problems.append(
            f"calibration.target_recall of a {dataset.task} task is a number, not {{class, value}}"
        )
    if (
        isinstance(target, ClassTarget)
        and dataset.classes is not None
        and target.class_ not in dataset.classes
    ):
        problems.append(
            f"calibration.target_recall.class {target.class_!r} is not in dataset.classes {dataset.classes}"
        )
    if isinstance(target, float) and "class" in task.operating_targets and task.class_of_interest is None:
        problems.append(
            "calibration.target_recall needs a class in a multiclass task: write {class: NAME, value: "
            f"{target}}} or set dataset.positive_value to the class of interest"
        )
    return problems
