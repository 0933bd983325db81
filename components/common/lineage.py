"""Lineage record of a run: code version, resolved config, data fingerprint, packages, trigger."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from components.common.config import KubeloopConfig

PACKAGES = (
    "kubeloop",
    "kfp",
    "kfp-kubernetes",
    "torch",
    "onnx",
    "onnxruntime",
    "pandas",
    "numpy",
    "scikit-learn",
    "great-expectations",
    "evidently",
    "pydantic",
    "minio",
)
MAX_DIFF_BYTES = 1_000_000


def fingerprint_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes: the same data always gives the same fingerprint."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def git_info(cwd: Path | None = None) -> dict[str, Any]:
    """Commit, dirty flag and uncommitted diff of the code; from KUBELOOP_GIT_* in an image."""
    where = cwd or Path(__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], where)
    if commit is None:
        return {
            "commit": os.environ.get("KUBELOOP_GIT_COMMIT", "unknown"),
            "dirty": os.environ.get("KUBELOOP_GIT_DIRTY", "unknown"),
            "diff": "",
            "source": "environment" if "KUBELOOP_GIT_COMMIT" in os.environ else "unavailable",
        }
    diff = _git(["diff", "HEAD"], where) or ""
    untracked = (_git(["ls-files", "--others", "--exclude-standard"], where) or "").split()
    truncated = len(diff.encode()) > MAX_DIFF_BYTES
    return {
        "commit": commit.strip(),
        "dirty": bool(diff or untracked),
        "diff": diff.encode()[:MAX_DIFF_BYTES].decode(errors="ignore") if truncated else diff,
        "diff_truncated": truncated,
        "untracked": untracked,
        "source": "git",
    }


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide what a model is."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def build_lineage(
    config: KubeloopConfig,
    run_id: str,
    data_fingerprint: str,
    parent_run: str = "",
    trigger: str = "manual",
) -> dict[str, Any]:
    """The lineage record stored with the run and with every model version it registers."""
    return {
        "run_id": run_id,
        "parent_run": parent_run or None,
        "trigger": trigger,
        "git": git_info(),
        "config": config.resolved(),
        "config_hash": f"sha256:{config.digest()}",
        "data": {"path": config.dataset.path, "fingerprint": data_fingerprint},
        "packages": package_versions(),
    }
