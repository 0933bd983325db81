"""The training DAG: validate_data -> train -> calibrate -> evaluate -> register -> deploy.

Calibrate runs before evaluate so the gate measures what serving will run: calibrated
probabilities at the chosen operating threshold.

No `from __future__ import annotations` here: kfp reads the pipeline signature's real types.
"""

from collections.abc import Callable
from typing import Any

from kfp import dsl

from components.calibrate.component import calibrate
from components.common.cluster import (
    RUN_AS,
    S3_ENDPOINT,
    S3_ENDPOINT_ENV,
    S3_SECRET,
    S3_SECRET_ENV,
    S3_SECRET_KEYS,
)
from components.common.config import KubeloopConfig
from components.common.images import (
    CUDA_IMAGE_ENV,
    IMAGE,
    IMAGE_ENV,
    SERVING_IMAGE,
    SERVING_IMAGE_ENV,
    TRAINING_GPU_IMAGE,
)
from components.common.training_config import TrainResources
from components.deploy.component import deploy
from components.evaluate.component import evaluate
from components.register.component import register
from components.train.component import train, train_gpu
from components.validate_data.component import validate_data

PIPELINE_NAME = "kubeloop-training"


def on_cluster(task: Any, cpu: str, memory: str) -> None:
    """Store credentials from the Secret, the endpoint, resource requests and a non-root user
    (cluster only; the KFP backend adds the rest of the restricted profile: no privilege
    escalation, no capabilities, RuntimeDefault seccomp)."""
    from kfp import kubernetes

    kubernetes.set_security_context(task, run_as_user=RUN_AS, run_as_group=RUN_AS, run_as_non_root=True)
    kubernetes.use_secret_as_env(
        task,
        secret_name=S3_SECRET,
        secret_key_to_env=S3_SECRET_KEYS,
    )
    task.set_env_variable(S3_ENDPOINT_ENV, S3_ENDPOINT)
    task.set_env_variable(S3_SECRET_ENV, S3_SECRET)
    task.set_cpu_request(cpu).set_memory_request(memory)
    task.set_caching_options(False)


def train_pod(task: Any, resources: TrainResources) -> None:
    """GPUs, placement and an in-memory /dev/shm for the train pod (cluster only), its image (a
    derived one carrying the team's model code, when set) and the images of the PyTorchJob
    workers it may start (as pinned: an overlay or the chart rewrites them)."""
    from kfp import kubernetes

    if resources.image:  # the team's derived image: the step and its workers import their model
        task.set_container_image(resources.image)
    task.set_env_variable(IMAGE_ENV, resources.image or IMAGE)
    task.set_env_variable(CUDA_IMAGE_ENV, resources.image or TRAINING_GPU_IMAGE)
    if resources.gpus:
        task.set_accelerator_type(resources.accelerator).set_accelerator_limit(resources.gpus)
    for key, value in sorted(resources.node_selector.items()):
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for toleration in resources.tolerations:
        kubernetes.add_toleration(
            task,
            key=toleration.key,
            operator=toleration.operator,
            value=toleration.value,
            effect=toleration.effect,
        )
    kubernetes.empty_dir_mount(
        task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=resources.shm_size
    )


def train_to_deploy(
    common: dict[str, Any], run_id: Any, splits: Any, cluster: bool, resources: TrainResources
) -> None:
    """The path after validate_data, shared by the training and retraining DAGs:
    train -> calibrate -> evaluate -> register -> deploy, with each pod's settings on a cluster.

    Args:
        common: config_json and store_uri, as every step gets them.
        run_id: The run id (validate_data's or assemble's output).
        splits: validate_data's splits prefix.
        cluster: Add secrets, endpoint, resource requests and the train pod's GPUs.
        resources: The train pod's resources.
    """
    # The CUDA image only where a pod gets GPUs: kfp.local runs every step in this process's env.
    step = train_gpu if cluster and resources.gpus else train
    fitted = step(**common, run_id=run_id, splits=splits).set_display_name("train")
    model = fitted.outputs["Output"]
    calibrated = calibrate(**common, run_id=run_id, splits=splits, model=model).set_display_name("calibrate")
    servable = calibrated.outputs["Output"]
    scored = evaluate(**common, run_id=run_id, splits=splits, model=servable)
    scored.set_display_name("evaluate")
    registered = register(
        **common,
        run_id=run_id,
        splits=splits,
        model=model,
        evaluation=scored.outputs["Output"],
        calibration=calibrated.outputs["Output"],
    )
    registered.set_display_name("register")
    deployed = deploy(
        **common, run_id=run_id, version=registered.outputs["version"], apply_to_cluster=cluster
    ).set_display_name("deploy")
    if cluster:
        for task, cpu, memory in (
            (fitted, resources.cpu, resources.memory),
            (calibrated, "1", "2Gi"),
            (scored, "1", "2Gi"),
            (registered, "500m", "1Gi"),
            (deployed, "250m", "512Mi"),
        ):
            on_cluster(task, cpu, memory)
        train_pod(fitted, resources)
        deployed.set_env_variable(SERVING_IMAGE_ENV, SERVING_IMAGE)


def make_training_pipeline(
    default_config_json: str, default_store: str, cluster: bool, name: str = PIPELINE_NAME
) -> Callable[..., Any]:
    """Build the pipeline; `cluster` adds Kubernetes settings that local runs must not get.

    Args:
        default_config_json: Resolved config used when a run gives none (e.g. from the UI).
            On a cluster, its `training.resources` also shape the train pod (GPUs, node
            selector, tolerations, /dev/shm): pod settings are fixed when compiling.
        default_store: Artifact store URI used when a run gives none.
        cluster: Add secrets, endpoint and resource requests for Kubeflow Pipelines.
        name: Pipeline name (the GPU variant gets its own).
    """
    resources = KubeloopConfig.from_json(default_config_json).training.resources

    @dsl.pipeline(
        name=name,
        description="Validate data, train, calibrate, evaluate (gate against floors and the champion), "
        "register a kubeloop model and, with deployment.auto_deploy, roll it out. Each step writes to "
        "runs/<run_id>/<step> in the store.",
    )
    def training(
        config_json: str = default_config_json,
        store_uri: str = default_store,
        run_id: str = "",
        parent_run: str = "",
        trigger: str = "manual",
    ) -> None:
        common = {"config_json": config_json, "store_uri": store_uri}
        checked = validate_data(
            **common,
            run_id=run_id,
            kfp_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            parent_run=parent_run,
            trigger=trigger,
        ).set_display_name("validate data")
        rid, splits = checked.outputs["run_id"], checked.outputs["splits"]
        if cluster:
            on_cluster(checked, "1", "2Gi")
        train_to_deploy(common, rid, splits, cluster, resources)

    return training
