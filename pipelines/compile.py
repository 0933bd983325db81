"""Compile every pipeline to KFP IR YAML and to Pipeline/PipelineVersion manifests."""

from __future__ import annotations

import warnings
from pathlib import Path

import yaml
from kfp import compiler
from kfp.compiler.compiler_utils import KubernetesManifestOptions

from components.common.config_loader import load_config
from components.monitor.cronjob import monitor_manifests
from pipelines.monitoring import KFP_IN_CLUSTER, MONITORING_PIPELINE, make_monitoring_pipeline
from pipelines.recalibrate import RECALIBRATE_PIPELINE, make_recalibrate_pipeline
from pipelines.retraining import RETRAINING_PIPELINE, make_retraining_pipeline
from pipelines.training import PIPELINE_NAME, make_training_pipeline

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "examples" / "screening" / "config.yaml"
IMAGES_CONFIG = REPO / "examples" / "screening_images" / "config.yaml"
CLUSTER_STORE = "s3://kubeloop"
CLUSTER_DATASET = "s3://kubeloop/datasets/screening/screening.parquet"
CLUSTER_IMAGES_DATASET = "s3://kubeloop/datasets/screening_images/screening_images.csv"
"""The image manifest on the cluster; its relative image paths resolve beside it."""
NAMESPACE = "kubeflow"
VERSION = "v0-1-0"


GPU_OVERRIDES = [
    "training.nproc=4",
    "training.device=cuda",
    "training.batch_size=1024",
    "training.resources={gpus: 4, cpu: '16', memory: 64Gi, shm_size: 16Gi,"
    " node_selector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3},"
    " tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]}",
]
"""The GPU variant: one pod with 4 GPUs (one torchrun process each) on a tainted H100 pool."""

IMAGE_GPU_OVERRIDES = [
    "training.nproc=4",
    "training.device=cuda",
    "training.batch_size=256",
    "dataset.image.workers=7",
    "training.resources={gpus: 4, cpu: '32', memory: 64Gi, shm_size: 16Gi,"
    " node_selector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3},"
    " tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]}",
]
"""The image GPU variant: the same pool, with CPUs for decoding. Each GPU's torchrun process
reads through its own DataLoader workers, so the pod asks for 8 CPUs per GPU: one for the
process, 7 for its workers (`dataset.image.workers`). /dev/shm carries the workers' batches
to their process (prefetched 4 deep per worker: 4 x 7 x 4 batches of 256 64x64 images, about
0.5 GiB) and NCCL's buffers, with room for larger `dataset.image.size`."""


MAKERS = {
    "training": make_training_pipeline,
    "recalibrate": make_recalibrate_pipeline,
    "retraining": make_retraining_pipeline,
    "monitoring": make_monitoring_pipeline,
}


def compile_pipeline(config_json: str, name: str, out: Path, kind: str = "training") -> list[Path]:
    """Write `<name>.yaml` (IR) and `<name>.k8s.yaml` (Pipeline + PipelineVersion manifests)."""
    pipeline = MAKERS[kind](config_json, CLUSTER_STORE, cluster=True, name=name)
    ir_path = out / f"{name}.yaml"
    k8s_path = out / f"{name}.k8s.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(pipeline, str(ir_path))
        compiler.Compiler().compile(
            pipeline,
            str(k8s_path),
            kubernetes_manifest_format=True,
            kubernetes_manifest_options=KubernetesManifestOptions(
                pipeline_name=name,
                pipeline_version_name=f"{name}-{VERSION}",
                namespace=NAMESPACE,
                include_pipeline_manifest=True,
            ),
        )
    _drop_undeclared_fields(k8s_path)
    return [ir_path, k8s_path]


def _drop_undeclared_fields(path: Path) -> None:
    """Remove `spec.displayName` from the Pipeline object kfp writes: KFP's Pipeline CRD
    (v2beta1) declares only `spec.description`, so `kubectl apply --server-side` refuses the
    object ("field not declared in schema", seen on a real API server) and a client-side apply
    drops it. It equals metadata.name, so nothing is lost; PipelineVersion declares it and keeps it.
    Re-written as kfp writes it (yaml.dump_all, sorted keys)."""
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for document in documents:
        if document.get("kind") == "Pipeline":
            document["spec"].pop("displayName", None)
    with path.open("w") as stream:
        yaml.dump_all(documents, stream, sort_keys=True)


def compile_all(
    out_dir: str | Path, config_path: str | Path | None = None, overrides: list[str] | None = None
) -> list[Path]:
    """Write the IR and manifests of each pipeline variant, plus a kustomization.

    Without a config: the shipped variants, `kubeloop-training` (CPU) and
    `kubeloop-training-gpu` (GPU_OVERRIDES), from the screening example pointed at the cluster
    store, so a run started from the Kubeflow UI with no parameters works once the dataset is
    uploaded; `kubeloop-training-images-gpu` (IMAGE_GPU_OVERRIDES) from the screening images
    example, its manifest and images uploaded likewise; and `kubeloop-recalibrate` (a run names
    the model_version; its config_json sets the target), `kubeloop-retraining` (started by the
    monitor with its evidence, or on a schedule) and `kubeloop-monitoring` (a recurring run of
    the drift check). With a config (and overrides): that one, as `kubeloop-training-<name>`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cluster = [f"dataset.path={CLUSTER_DATASET}", f"store={CLUSTER_STORE}"]
    if config_path is None:
        variants = {
            PIPELINE_NAME: load_config(EXAMPLE_CONFIG, cluster),
            f"{PIPELINE_NAME}-gpu": load_config(EXAMPLE_CONFIG, [*cluster, *GPU_OVERRIDES]),
            f"{PIPELINE_NAME}-images-gpu": load_config(
                IMAGES_CONFIG,
                [f"dataset.path={CLUSTER_IMAGES_DATASET}", f"store={CLUSTER_STORE}", *IMAGE_GPU_OVERRIDES],
            ),
        }
    else:
        config = load_config(Path(config_path), [f"store={CLUSTER_STORE}", *(overrides or [])])
        variants = {f"{PIPELINE_NAME}-{config.name}": config}
    paths = [path for name, cfg in variants.items() for path in compile_pipeline(cfg.to_json(), name, out)]
    if config_path is None:
        shipped = variants[PIPELINE_NAME].to_json()
        paths += compile_pipeline(shipped, RECALIBRATE_PIPELINE, out, "recalibrate")
        paths += compile_pipeline(shipped, RETRAINING_PIPELINE, out, "retraining")
        paths += compile_pipeline(shipped, MONITORING_PIPELINE, out, "monitoring")
    manifests = [p for p in paths if p.name.endswith(".k8s.yaml")]
    image_fields = write_image_fields(manifests, out / IMAGE_FIELDS)
    kustomization = out / "kustomization.yaml"
    resources = "".join(f"  - {p.name}\n" for p in manifests)
    kustomization.write_text(
        "# Generated by `kubeloop compile`: the compiled pipelines as Kubernetes resources.\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n{resources}configurations:\n  - {IMAGE_FIELDS}\n"
    )
    return [*paths, image_fields, kustomization]


IMAGE_FIELDS = "image-fields.yaml"


def write_image_fields(manifests: list[Path], path: Path) -> Path:
    """A kustomize configuration so an overlay's `images:` also pins the images inside pipelines.

    kustomize rewrites `containers[].image` by itself but not a PipelineVersion's executors, nor
    the KUBELOOP_IMAGE env values that tell a step which image its own pods use.
    """
    executors = sorted(
        {
            name
            for manifest in manifests
            for obj in yaml.safe_load_all(manifest.read_text())
            if obj and obj["kind"] == "PipelineVersion"
            for name in obj["spec"]["pipelineSpec"]["deploymentSpec"]["executors"]
        }
    )
    prefix = "spec/pipelineSpec/deploymentSpec/executors"
    fields = [
        {"path": f"{prefix}/{name}/container/{field}", "kind": "PipelineVersion"}
        for name in executors
        for field in ("image", "env/value")
    ]
    path.write_text(
        "# Generated by `kubeloop compile`: where images sit inside the compiled pipelines.\n"
        + yaml.safe_dump({"images": fields}, sort_keys=False)
    )
    return path


class _ManifestDumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's config.yaml) as literal blocks; no anchors or aliases."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _literal(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_ManifestDumper.add_representer(str, _literal)


def write_monitor(
    out_dir: str | Path, config_path: str | Path | None = None, overrides: list[str] | None = None
) -> list[Path]:
    """Write the drift monitor's CronJob (with its ServiceAccount and ConfigMap) and a kustomization.

    Without a config: for the screening example pointed at the cluster store, as shipped in
    manifests/monitor/. The CronJob runs `kubeloop monitor --once` against the in-cluster KFP API.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cluster = [f"dataset.path={CLUSTER_DATASET}", f"store={CLUSTER_STORE}"]
    if config_path is None:
        config = load_config(EXAMPLE_CONFIG, cluster)
    else:
        config = load_config(Path(config_path), [f"store={CLUSTER_STORE}", *(overrides or [])])
    objects = monitor_manifests(config, config.deployment.namespace, KFP_IN_CLUSTER)
    path = out / f"{config.name}-monitor.yaml"
    path.write_text(
        f"# Generated by `kubeloop compile --monitor-out`: the drift monitor of {config.name}.\n"
        + yaml.dump_all(objects, Dumper=_ManifestDumper, sort_keys=False)
    )
    kustomization = out / "kustomization.yaml"
    kustomization.write_text(
        "# Generated by `kubeloop compile --monitor-out`: the drift monitor CronJob.\n"
        f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {path.name}\n"
    )
    return [path, kustomization]
