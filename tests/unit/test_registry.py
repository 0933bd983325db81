"""Model registry: versions, stages, champion, and updates that race each other."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from pathlib import Path

import pytest

from components.common.registry import Registry
from components.common.store import Store, open_store


def _register(registry: Registry, name: str = "m", recall: float = 0.9) -> str:
    return registry.register(
        name,
        {"model.onnx": b"onnx", "metrics.json": b"{}"},
        {"run_id": f"run-{recall}", "metrics": {"recall": recall}},
    )


def test_versions_count_up_and_keep_info(store: Store) -> None:
    registry = Registry(store)
    assert [_register(registry, recall=r) for r in (0.8, 0.85, 0.9)] == ["1", "2", "3"]
    versions = registry.versions("m")
    assert list(versions) == ["1", "2", "3"]
    assert versions["2"]["metrics"]["recall"] == 0.85
    assert versions["2"]["files"] == ["metrics.json", "model.onnx"]
    assert store.read_bytes("models/m/3/model.onnx") == b"onnx"
    assert registry.models() == ["m"]


def test_versioned_files_name_their_version(store: Store) -> None:
    registry = Registry(store)
    version = registry.register("m", {}, {}, versioned_files=lambda v: {"card.html": f"v{v}".encode()})
    assert store.read_text(f"models/m/{version}/card.html") == f"v{version}"


def test_a_crash_while_writing_files_leaves_no_ready_version(store: Store, tmp_path: Path) -> None:
    registry = Registry(store)
    with pytest.raises(FileNotFoundError):
        registry.register("m", {"model.onnx": tmp_path / "missing.onnx"}, {})
    assert registry.versions("m") == {}
    assert _register(registry) == "2"  # the pending number is never reused
    assert list(registry.versions("m")) == ["2"]


def test_stages_move_and_production_archives_the_old_champion(store: Store) -> None:
    registry = Registry(store)
    for _ in range(3):
        _register(registry)
    assert registry.champion("m") is None
    registry.set_stage("m", "1", "production", reason="first")
    registry.set_stage("m", "2", "shadow")
    registry.set_stage("m", "2", "canary")
    stages = registry.stages("m")
    assert (stages["production"], stages["canary"], stages["shadow"]) == ("1", "2", None)
    registry.set_stage("m", "2", "production")
    assert registry.champion("m") == "2"
    assert registry.stage_of("m", "1") == "archived"
    assert registry.stage_of("m", "3") is None
    assert [h["stage"] for h in registry.stages("m")["history"]] == [
        "production",
        "shadow",
        "canary",
        "production",
    ]


def test_unknown_version_or_stage_is_refused(store: Store) -> None:
    registry = Registry(store)
    _register(registry)
    with pytest.raises(ValueError, match="no ready version '9'"):
        registry.set_stage("m", "9", "production")
    with pytest.raises(ValueError, match="unknown stage"):
        registry.set_stage("m", "1", "staging")  # type: ignore[arg-type]


def test_racing_registrations_get_distinct_versions(store: Store) -> None:
    registry = Registry(store)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(_register(registry))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results, key=int) == [str(i) for i in range(1, 7)]
    assert len(registry.versions("m")) == 6


def test_racing_stage_updates_lose_neither(store: Store) -> None:
    registry = Registry(store)
    for _ in range(4):
        _register(registry)
    barrier = threading.Barrier(2)

    def move(version: str, stage: str) -> None:
        barrier.wait(timeout=30)
        for _ in range(10):
            registry.set_stage("m", version, stage)  # type: ignore[arg-type]

    threads = [
        threading.Thread(target=move, args=("2", "shadow")),
        threading.Thread(target=move, args=("3", "canary")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    stages = registry.stages("m")
    assert stages["shadow"] == "2" and stages["canary"] == "3"
    assert len(stages["history"]) == 20


def _stage_in_process(uri: str, version: str, stage: str) -> None:
    registry = Registry(open_store(uri))
    for _ in range(10):
        registry.set_stage("m", version, stage)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_stage_updates_from_separate_processes_lose_neither(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # Three processes, each its own client: on S3 only the server's conditional writes keep order.
    if backend == "s3":
        request.getfixturevalue("s3_env")  # the children inherit the server's address and keys
    uri = str(tmp_path) if backend == "local" else f"s3://kubeloop-test/{uuid.uuid4().hex}"
    registry = Registry(open_store(uri))
    for _ in range(3):
        _register(registry)
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_stage_in_process, args=(uri, v, s))
        for v, s in (("1", "production"), ("2", "shadow"), ("3", "canary"))
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    stages = open_store(uri).read_json("models/m/stages.json")
    assert (stages["production"], stages["shadow"], stages["canary"]) == ("1", "2", "3")
    assert len(stages["history"]) == 30
