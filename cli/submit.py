"""`kubeloop submit` and `kubeloop register`: runs and pipeline versions on a Kubeflow Pipelines API.

submit compiles the config's training pipeline and creates a run of it (the run carries its
own pipeline spec, so the pods get this config's resources), or runs a registered pipeline
version with the config as its `config_json` parameter. register uploads the compiled
pipelines of a folder as pipeline versions, named by their content, so registering twice
uploads nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from cli.common import EXIT_FAILED, EXIT_USAGE, OVERRIDES_HELP, command, config_from_args
from components.common.config import KubeloopConfig
from components.common.kfp_client import api_error, experiment_id, kfp_client, pipeline_version

DEFAULT_EXPERIMENT = "kubeloop-training"
DIGEST_CHARS = 12


def cluster_problems(config: KubeloopConfig) -> list[str]:
    """What keeps a config from running in pods, each with its fix."""
    problems = []
    if "://" not in config.dataset.path:
        problems.append(
            f"dataset.path {config.dataset.path!r} is a local file, which pods cannot read: upload it and "
            "pass dataset.path=s3://bucket/key"
        )
    if "://" not in config.store:
        problems.append(
            f"store {config.store!r} is a local folder, which pods cannot share: pass store=s3://bucket/prefix"
        )
    return problems


@dataclass(frozen=True)
class Registered:
    """What register did with one compiled pipeline."""

    pipeline: str
    version: str
    action: str  # created (a new pipeline), uploaded (a new version), unchanged


def _compiled(folder: Path) -> list[Path]:
    """The IR files of a compile folder (not the .k8s.yaml manifests, not the kustomization)."""
    skip = ("kustomization.yaml",)
    return sorted(p for p in folder.glob("*.yaml") if not p.name.endswith(".k8s.yaml") and p.name not in skip)


def _newest_version(client: Any, pipeline_id: str) -> Any | None:
    found = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc")
    versions = found.pipeline_versions or []
    return versions[0] if versions else None


def register_folder(client: Any, folder: Path, now: datetime | None = None) -> list[Registered]:
    """Upload each compiled pipeline of `folder` whose content is not its pipeline's newest version.

    A version is named `<pipeline>-<sha256 of the file, 12 hex>-<UTC time>`; the first version
    of a new pipeline keeps KFP's name for it and the digest goes in the pipeline's description.

    Raises:
        ValueError: The folder holds no compiled pipeline, or a file is not KFP IR.
    """
    files = _compiled(folder)
    if not files:
        raise ValueError(f"no compiled pipelines in {folder}: run `kubeloop compile --out {folder}` first")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    done = []
    for path in files:
        data = path.read_bytes()
        spec = next(iter(yaml.safe_load_all(data)), None)
        if not isinstance(spec, dict) or "pipelineInfo" not in spec:
            raise ValueError(f"{path} is not a compiled KFP pipeline (no pipelineInfo)")
        name = str(spec["pipelineInfo"]["name"])
        digest = hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]
        described = f"{spec['pipelineInfo'].get('description', '')} (sha256 {digest})".strip()
        pipeline_id = client.get_pipeline_id(name)
        if pipeline_id is None:
            created = client.upload_pipeline(str(path), pipeline_name=name, description=described)
            newest = _newest_version(client, str(created.pipeline_id))
            done.append(Registered(name, str(newest.display_name) if newest else name, "created"))
            continue
        newest = _newest_version(client, str(pipeline_id))
        newest_name = str(newest.display_name) if newest is not None else ""
        if newest_name.startswith(f"{name}-{digest}") or (
            newest_name == name  # the first version: its digest is in the pipeline's description
            and f"(sha256 {digest})" in str(client.get_pipeline(pipeline_id).description or "")
        ):
            done.append(Registered(name, newest_name, "unchanged"))
            continue
        version = f"{name}-{digest}-{stamp}"
        client.upload_pipeline_version(
            str(path), version, pipeline_id=pipeline_id, description=f"sha256 {digest} of {path.name}"
        )
        done.append(Registered(name, version, "uploaded"))
    return done


def submit_run(
    client: Any,
    config: KubeloopConfig,
    run_id: str,
    experiment: str,
    pipeline: str | None = None,
    version_id: str | None = None,
) -> str:
    """Create a training run of `config`; returns the KFP run id.

    Without `pipeline`: the config's own compiled pipeline goes with the run. With it: the
    registered version (the newest, or `version_id`) runs with the config as `config_json`.

    Raises:
        ValueError: The named pipeline is not registered, or has no version.
    """
    from pipelines.compile import compile_pipeline
    from pipelines.training import PIPELINE_NAME

    params = {"run_id": run_id, "trigger": "manual"}
    if pipeline:
        pipeline_id, version = pipeline_version(client, pipeline, version_id)
        run = client.run_pipeline(
            experiment_id(client, experiment),
            run_id,
            params={**params, "config_json": config.to_json(), "store_uri": config.store},
            pipeline_id=pipeline_id,
            version_id=version,
        )
        return str(run.run_id)
    with tempfile.TemporaryDirectory(prefix="kubeloop-submit-") as tmp:
        ir, _ = compile_pipeline(config.to_json(), f"{PIPELINE_NAME}-{config.name}", Path(tmp))
        arguments = {**params, "store_uri": config.store}
        result = client.create_run_from_pipeline_package(
            str(ir), arguments=arguments, run_name=run_id, experiment_name=experiment
        )
    return str(result.run_id)


def _reraise(exc: Exception) -> str:
    """The message of our own ValueErrors; anything else is a bug and keeps its traceback."""
    if isinstance(exc, ValueError):
        return str(exc)
    raise exc


def cmd_submit(args: argparse.Namespace) -> int:
    """Create a training run on the cluster."""
    from pipelines.local import new_run_id

    config = config_from_args(args)
    problems = cluster_problems(config)
    if problems:
        print("error: this config cannot run on a cluster:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_USAGE
    run_id = args.run_id or new_run_id()
    try:
        client = kfp_client(args.host)
        kfp_run = submit_run(client, config, run_id, args.experiment, args.pipeline, args.version)
    except Exception as exc:  # noqa: BLE001 - API and network errors become one readable line
        print(f"error: {api_error(exc, args.host) or _reraise(exc)}", file=sys.stderr)
        return EXIT_FAILED
    print(f"submitted run {run_id} (KFP run {kfp_run}) to {args.host}, experiment {args.experiment}")
    print(f"its steps write to {config.store.rstrip('/')}/runs/{run_id}/")
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    """Upload the compiled pipelines of a folder as pipeline versions."""
    try:
        done = register_folder(kfp_client(args.host), Path(args.dir))
    except Exception as exc:  # noqa: BLE001 - API and network errors become one readable line
        print(f"error: {api_error(exc, args.host) or _reraise(exc)}", file=sys.stderr)
        return EXIT_FAILED
    for item in done:
        print(f"{item.action:9} {item.pipeline}: {item.version}")
    return 0


def add_parsers(sub: Any) -> None:
    """The submit and register subcommands."""
    sbm = command(
        sub,
        "submit",
        "create a training run on a Kubeflow Pipelines API",
        "kubeloop submit --host http://localhost:8888 --config examples/screening/config.yaml store=s3://kubeloop",
    )
    sbm.add_argument("--host", required=True, help="Kubeflow Pipelines API URL")
    sbm.add_argument("--config", required=True, help="project YAML")
    sbm.add_argument("--run-id", default="", help="default: a new time-stamped id (the run's name)")
    sbm.add_argument("--experiment", default=DEFAULT_EXPERIMENT, help="KFP experiment (created if missing)")
    sbm.add_argument(
        "--pipeline", help="run this registered pipeline with the config as config_json instead of compiling"
    )
    sbm.add_argument("--version", help="pipeline version id (with --pipeline; default: the newest)")
    sbm.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)
    sbm.set_defaults(func=cmd_submit)

    reg = command(
        sub,
        "register",
        "upload compiled pipelines as KFP pipeline versions",
        "kubeloop register --host http://localhost:8888",
    )
    reg.add_argument("--host", required=True, help="Kubeflow Pipelines API URL")
    reg.add_argument("--dir", default="manifests/pipelines", help="folder of `kubeloop compile` output")
    reg.set_defaults(func=cmd_register)
