"""Shared fixtures: a real S3-protocol server on 127.0.0.1 and stores on both backends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.common.store import LocalStore, Store
from components.common.tasks import BinaryTask
from components.deploy.local_serving import free_port
from tests.specs import tabular_spec

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's standalone S3 server on 127.0.0.1; yields the environment a client needs."""
    binary = Path(sys.executable).with_name("moto_server")
    port = free_port()
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError("moto_server exited during start-up") from None
                time.sleep(0.1)
        else:
            raise RuntimeError(f"moto_server did not answer on {endpoint} within 10 s")
        yield {
            "KUBELOOP_S3_ENDPOINT": endpoint,
            "AWS_ACCESS_KEY_ID": "testing-key",
            "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_REGION": "us-east-1",
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def s3_env(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The S3 server's variables set in this process for one test."""
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    return s3_server


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The same tests run against the folder backend and the S3 backend."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    request.getfixturevalue("s3_env")
    from components.common.s3store import S3Store

    return S3Store.from_uri(f"s3://kubeloop-test/{uuid.uuid4().hex}")


@pytest.fixture
def clean_env() -> dict[str, str]:
    """This process's environment without S3 settings (for subprocesses)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBELOOP_S3"))}


def tool(name: str) -> str:
    """Path of helm/kubectl put in .tools/bin by `make tools`; skip when absent outside CI."""
    path = REPO / ".tools" / "bin" / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if os.environ.get("CI") and not found:
        pytest.fail(f"{name} missing: `make tools` should have put it in .tools/bin")
    if not found:
        pytest.skip(f"{name} not installed; run `make tools`")
    return found


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real etcd + kube-apiserver on 127.0.0.1 (tests/kubecluster.py), for the whole session;
    stopped at the end, also after a failure."""
    from scripts.kube_binaries import built
    from tests.kubecluster import ControlPlane

    binaries = built()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(
                "kube-apiserver and etcd missing: `make test` should have built them (make kube-binaries)"
            )
        pytest.skip("kube-apiserver and etcd not built; run `make kube-binaries`")
    plane = ControlPlane.start(binaries, tmp_path_factory.mktemp("kube"))
    try:
        yield plane
    finally:
        plane.stop()


def encoded_screening(rows: int, seed: int) -> tuple[Any, Any, Any]:
    """(preprocessing, X, y) for a screening sample from scanners A and B (model tests)."""
    import numpy as np

    from components.common.preprocessing import Preprocessing
    from examples.screening.generate import generate

    frame = generate(rows=rows, prevalence=0.1, scanners={"A": 0.5, "B": 0.5}, seed=seed)
    features = [c for c in frame.columns if c not in ("exam_id", "exam_time", "site_id", "label")]
    prep = Preprocessing.fit(frame, features, ["scanner"])
    return prep, prep.encode(frame), frame["label"].to_numpy(dtype=np.float32)


def screening_dataset(**split: Any) -> Any:
    """The screening example's dataset section (columns, categorical), with a split spec."""
    from components.common.config import DatasetConfig, SplitSpec

    return DatasetConfig(
        path="x.parquet",
        label="label",
        id_column="exam_id",
        time_column="exam_time",
        group_column="site_id",
        categorical=["scanner"],
        split=SplitSpec(**split),
    )


def fit_screening(cfg: Any, rows: int, seed: int, train_rows: int) -> tuple[Any, Any, Any, Any]:
    """(model, preprocessing, X, y): the recipe fitted on the first train_rows of a sample,
    validated on the rest, without log lines."""
    from tests.specs import fit

    prep, x, y = encoded_screening(rows=rows, seed=seed)
    model, _ = fit(
        cfg,
        x[:train_rows],
        y[:train_rows],
        x[train_rows:],
        y[train_rows:],
        tabular_spec(prep),
        task=BinaryTask("label", 1),
        log=lambda _: None,
    )
    return model, prep, x, y
