"""Shared fixtures: a real S3 server and a real Kubernetes control plane on 127.0.0.1, stores on
both backends."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
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
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real S3 server on 127.0.0.1 (versitygw over a temporary folder, built by `make
    test-binaries`) for the whole session; yields the environment a client needs."""
    from scripts.test_binaries import S3SERVER

    folder = S3SERVER.built()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("versitygw missing: `make test` should have built it (make test-binaries)")
        pytest.skip("the S3 server is not built; run `make test-binaries`")
    root = tmp_path_factory.mktemp("s3")
    (root / "data").mkdir()
    credentials = {"AWS_ACCESS_KEY_ID": "kubeloop-test-key", "AWS_SECRET_ACCESS_KEY": "kubeloop-test-secret"}
    port = free_port()
    log = (root / "versitygw.log").open("w")
    process = subprocess.Popen(
        [
            str(folder / "versitygw"),
            *("--access", credentials["AWS_ACCESS_KEY_ID"], "--secret", credentials["AWS_SECRET_ACCESS_KEY"]),
            *("--port", f"127.0.0.1:{port}", "--quiet", "posix", str(root / "data")),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for_http(endpoint, process, (root / "versitygw.log"))
        yield {"KUBELOOP_S3_ENDPOINT": endpoint, "AWS_REGION": "us-east-1", **credentials}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_for_http(endpoint: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
    """Return once `endpoint` answers HTTP (any status); fail with the server's log if it exits or
    stays silent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return
        except urllib.error.HTTPError:  # an answer, if only "access denied"
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{endpoint}'s server exited during start-up:\n{log.read_text()}"
                ) from None
            time.sleep(0.1)
    raise RuntimeError(f"nothing answered on {endpoint} within {seconds:.0f} s:\n{log.read_text()}")


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
    from scripts.test_binaries import KUBECLUSTER
    from tests.kubecluster import ControlPlane

    binaries = KUBECLUSTER.built()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(
                "kube-apiserver and etcd missing: `make test` should have built them (make test-binaries)"
            )
        pytest.skip("kube-apiserver and etcd not built; run `make test-binaries`")
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
