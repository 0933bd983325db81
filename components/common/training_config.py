"""The `training` config section: the model (built-in or a team's factory), its fitting, the pod."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from components.common.config_section import Section


class Toleration(Section):
    """A Kubernetes toleration, so the train pod can land on tainted (e.g. GPU) nodes."""

    key: str | None = None
    """Taint key (e.g. nvidia.com/gpu); null with operator Exists tolerates every taint."""
    operator: Literal["Equal", "Exists"] = "Exists"
    """Equal matches `value`; Exists matches any value of the key."""
    value: str | None = None
    """Taint value (operator Equal only)."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to tolerate; null tolerates all effects."""

    @model_validator(mode="after")
    def _value_needs_equal(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise ValueError(f"value '{self.value}' needs operator: Equal (Exists ignores values)")
        return self


class TrainResources(Section):
    """The train pod on a cluster: requests, GPUs and placement (local runs ignore these)."""

    cpu: str = Field("2", pattern=r"^[0-9]+(\.[0-9]+|m)?$")
    """CPU request (Kubernetes quantity: 2, 1.5, 500m)."""
    memory: str = Field("4Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$")
    """Memory request (Kubernetes quantity: 4Gi, 512Mi)."""
    gpus: int = Field(0, ge=0, le=16)
    """Accelerators the pod asks for (limit); torchrun starts one process per GPU."""
    accelerator: str = "nvidia.com/gpu"
    """Extended resource name of the accelerator."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels the pod requires, e.g. {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints the pod tolerates (GPU node pools are usually tainted)."""
    shm_size: str = Field("2Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$")
    """Size of the in-memory /dev/shm (the 64Mi container default starves NCCL and loaders)."""
    image: str | None = Field(None, pattern=r"^[^\s]+$")
    """The train pod's image when it must carry your model code (training.model): a derived
    image FROM kubeloop with your package on the import path (examples/own_model/Dockerfile).
    Recorded in the compiled pipeline; the pod's PyTorchJob workers run it too. Default:
    kubeloop's image (its CUDA build when gpus > 0)."""


class ModelFactory(Section):
    """A model of your own: a function that builds a torch.nn.Module from the model spec."""

    factory: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """Import path `package.module:function`, called as function(spec, **params); it returns an
    nn.Module mapping the input tensor (batch, spec.n_inputs) to logits (batch, spec.n_outputs)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the factory (widths, depths, dropout, ...)."""


class InitFrom(Section):
    """Weights a run starts from: a registered version (fine-tuning, warm-started retraining)
    or a state dict in the store."""

    model: str | None = None
    """A registered model's name (often this project's own)."""
    version: int | Literal["production"] = "production"
    """Which version of `model`: a number, or whichever is in production when the run starts."""
    uri: str | None = None
    """Instead of a model: a key in the artifact store (or a local path) holding a state dict,
    a kubeloop model.pt or a training checkpoint."""

    @model_validator(mode="after")
    def _one_source(self) -> InitFrom:
        if (self.model is None) == (self.uri is None):
            raise ValueError("init_from needs exactly one of model (with version) or uri")
        return self


class TrainingConfig(Section):
    """The model and how it is fitted."""

    model: ModelFactory | None = None
    """Your own network (`{factory: package.module:function, params: {...}}`); default: the
    built-in MLP that hidden_sizes, dropout and embedding_size describe."""
    loss: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """Your own loss, `package.module:function`, called as function(spec) -> nn.Module that
    takes (logits, targets) to a scalar; default: the task's (binary or softmax cross-entropy)."""
    code_path: str | None = None
    """Folder put first on the import path for model and loss, so a module beside the config
    imports. Default: the config file's folder. On a cluster the image carries the code."""
    init_from: InitFrom | None = None
    """Start from these weights instead of a random draw; tensors whose shape differs (a class
    added) keep their fresh initialisation, and the log names them."""
    freeze: list[str] = Field(default_factory=list)
    """Parameter-name prefixes to hold fixed (e.g. ["blocks.0", "project"]); each must match."""
    unfreeze_after_epochs: int | None = Field(None, ge=1)
    """Train the frozen parameters too from this epoch on (null: they stay frozen)."""

    hidden_sizes: list[int] = Field(default_factory=lambda: [64, 32])
    """Width of each hidden layer of the MLP."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout after each hidden layer."""
    epochs: int = Field(20, ge=1, le=10_000)
    """Maximum passes over the training split."""
    batch_size: int = Field(256, ge=1)
    """Rows per optimiser step (per process)."""
    learning_rate: float = Field(1e-3, gt=0)
    """AdamW learning rate."""
    weight_decay: float = Field(1e-4, ge=0)
    """AdamW weight decay."""
    early_stopping_patience: int = Field(5, ge=1)
    """Epochs without validation-loss improvement before stopping."""
    class_weighting: bool = True
    """Weight positives by negatives/positives so rare positives are not ignored."""
    seed: int = 0
    """Seed for weights, shuffling and dropout."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto uses CUDA when present, otherwise CPU."""
    nproc: int = Field(1, ge=1, le=64)
    """Processes torchrun starts on the node: one per GPU, or CPU processes (gloo)."""
    max_restarts: int = Field(1, ge=0, le=10)
    """Times torchrun restarts the workers after one dies; they resume from the last checkpoint."""
    lr_scaling: Literal["linear", "none"] = "linear"
    """linear: learning rate x number of processes, as the global batch grows (Goyal et al. 2017)."""
    warmup_epochs: float = Field(1.0, ge=0)
    """Epochs over which the learning rate ramps linearly up to its (scaled) value."""
    grad_clip_norm: float | None = Field(1.0, gt=0)
    """Clip the gradient norm to this value; null turns clipping off."""
    categorical_encoding: Literal["one_hot", "embedding"] = "one_hot"
    """one_hot: a 0/1 input per category; embedding: a learnt vector per category (many levels)."""
    embedding_size: int | None = Field(None, ge=1, le=512)
    """Embedding width per categorical column; null: min(16, 1.6 x levels^0.56) (fastai's rule)."""
    log_every_s: float = Field(30.0, ge=0)
    """Seconds between progress lines (step, loss, samples/s) within an epoch, on rank 0."""
    smoke_test: bool = True
    """Before the real run, train briefly on a small stratified subset; fail fast unless the
    training loss falls and the validation loss improves."""
    smoke_test_rows: int = Field(2048, ge=64)
    """Training rows of the smoke test's subset (validation rows: half as many)."""
    smoke_test_epochs: int = Field(5, ge=1, le=100)
    """Epochs of the smoke test (at least 8 steps each)."""
    resources: TrainResources = Field(default_factory=TrainResources)
    """The train pod's resources and placement on a cluster."""
    nodes: int = Field(1, ge=1, le=256)
    """Pods (nodes) to train on; above 1 the step runs a Kubeflow PyTorchJob (cluster only)."""
    min_nodes: int | None = Field(None, ge=1)
    """Elastic lower bound: the PyTorchJob keeps training with this many pods (default: nodes)."""

    @model_validator(mode="after")
    def _processes_fit_the_resources(self) -> TrainingConfig:
        gpus = self.resources.gpus
        if gpus and self.nproc != gpus:
            raise ValueError(
                f"nproc ({self.nproc}) must equal resources.gpus ({gpus}): torchrun starts one "
                f"process per GPU; set training.nproc={gpus}"
            )
        if self.min_nodes is not None and self.min_nodes > self.nodes:
            raise ValueError(f"min_nodes ({self.min_nodes}) must not exceed nodes ({self.nodes})")
        if gpus and self.device == "cpu":
            raise ValueError(f"device is 'cpu' but resources.gpus is {gpus}; use device 'auto' or 'cuda'")
        if self.unfreeze_after_epochs is not None and not self.freeze:
            raise ValueError("unfreeze_after_epochs needs training.freeze (there is nothing to unfreeze)")
        return self
