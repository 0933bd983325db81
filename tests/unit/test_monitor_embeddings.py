"""The monitor compares an image version's served embeddings with its held-out ones: a new device
in the traffic is an embedding-drift finding that starts one retraining run with the evidence."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from components.common.drift_reference import EMBEDDING_REFERENCE
from components.common.onnx_outputs import encode_embeddings
from components.common.registry import Registry
from components.common.store import LocalStore
from components.monitor.monitor import monitor_pass
from tests.embedding_cases import window
from tests.monitor_fixtures import (
    HOUR,
    T0,
    RecordingLauncher,
    log_lines,
    monitor_config,
    register_production,
    write_log,
)


def with_embeddings(lines: list[str], embeddings: np.ndarray) -> list[str]:
    """The log lines with each row's embedding as serving logs it."""
    out = []
    for line, encoded in zip(lines, encode_embeddings(embeddings), strict=True):
        record = json.loads(line)
        record["embedding"] = encoded
        out.append(json.dumps(record) + "\n")
    return out


def test_a_new_device_in_the_embeddings_triggers_one_run_with_the_evidence(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    version = register_production(store)
    buffer = io.BytesIO()
    np.save(buffer, window("", 2200, reference=True, seed=1))  # the version's held-out images
    registry = Registry(store)
    store.write_bytes(
        f"{registry.version_prefix('screening', version)}/{EMBEDDING_REFERENCE}", buffer.getvalue()
    )
    plan = ["no shift", "no shift", "new device"]
    for hour, case in enumerate(plan):
        start = T0 + hour * HOUR
        lines, _ = log_lines(start, 600, version, "A", seed=hour)  # the same scanner: no data drift
        write_log(store, start, with_embeddings(lines, window(case, 600, seed=10 + hour)))
    launcher = RecordingLauncher("succeeded")
    progress: list[str] = []
    result = monitor_pass(
        store, monitor_config(), launcher, now=T0 + len(plan) * HOUR, progress=progress.append
    )
    assert [("embedding_drift" in c.findings, "data_drift" in c.findings) for c in result.checks] == [
        (False, False),
        (False, False),
        (True, False),
    ]
    assert [d.action for d in result.decisions] == ["none", "none", "trigger"]
    quiet, drifted = result.checks[0].embedding_drift, result.checks[2].embedding_drift
    assert quiet is not None and drifted is not None
    assert quiet["method"] == "model" and quiet["score"] < 0.55 < drifted["score"]
    assert drifted["rows"] == 600 and drifted["reference_rows"] == 2200
    evidence = launcher.started[0][1]
    assert "embedding_drift" in evidence["findings"] and evidence["embedding_drift"]["drifted"]
    assert any("embeddings drifted (domain classifier ROC AUC" in line for line in progress)


def test_a_window_without_enough_embeddings_is_reported_too_small(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    version = register_production(store)
    buffer = io.BytesIO()
    np.save(buffer, window("", 500, reference=True))
    store.write_bytes(
        f"{Registry(store).version_prefix('screening', version)}/{EMBEDDING_REFERENCE}", buffer.getvalue()
    )
    lines, _ = log_lines(T0, 300, version, "A")
    write_log(store, T0, lines)  # a version that logs no embeddings (a table's)
    result = monitor_pass(
        store, monitor_config(), RecordingLauncher(), now=T0 + HOUR, progress=lambda _: None
    )
    assert result.checks[0].embedding_drift == {"too_small": True, "rows": 0, "min_rows": 100}
    assert "embedding_drift" not in result.checks[0].findings


def served_properties(data: bytes) -> dict[str, object]:
    """What serving logs of an image under `features` (the gate's properties, prefixed)."""
    from components.common.modalities.image_properties import image_properties

    measured = image_properties(data, "served.png")
    return {f"image_{k}": measured[k] for k in ("width", "height", "bit_depth", "mean", "std", "sharpness")}


def test_the_windows_page_shows_the_served_images_least_like_the_held_out_ones(tmp_path: Path) -> None:
    """The last 240 of 600 rows come from a new device (their embeddings offset, their images
    kept by sample_share): the page's atypical images are theirs, shown as thumbnails."""
    from PIL import Image

    store = LocalStore(tmp_path / "store")
    version = register_production(store)
    buffer = io.BytesIO()
    np.save(buffer, window("", 2200, reference=True, seed=1))
    store.write_bytes(
        f"{Registry(store).version_prefix('screening', version)}/{EMBEDDING_REFERENCE}", buffer.getvalue()
    )
    embeddings = window("no shift", 600, seed=5)
    embeddings[360:] += 3.0 * np.ones(embeddings.shape[1], dtype=np.float32) / np.sqrt(embeddings.shape[1])
    lines, _ = log_lines(T0, 600, version, "A", seed=7)
    records = [json.loads(line) for line in with_embeddings(lines, embeddings)]
    rng = np.random.default_rng(0)
    for index, record in enumerate(records):
        shade = 170 if index >= 360 else 60  # the new device's images are brighter
        pixels = np.clip(rng.normal(shade, 25, (48, 40)), 0, 255).astype(np.uint8)
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")
        record["stored"] = f"served/screening/20261120/{index:04d}.png"
        record["features"] = served_properties(png.getvalue())
        store.write_bytes(record["stored"], png.getvalue())
    write_log(store, T0, [json.dumps(r) + "\n" for r in records])
    result = monitor_pass(
        store, monitor_config(), RecordingLauncher(), now=T0 + HOUR, progress=lambda _: None
    )
    verdict = result.checks[0].embedding_drift
    assert verdict is not None and verdict["drifted"]
    atypical = verdict["atypical"]
    assert len(atypical) == 12
    assert all(int(a["request_id"].rsplit("-", 1)[1]) >= 360 for a in atypical)  # the new device's rows
    page = store.read_text(verdict["report"])
    assert verdict["report"].endswith("embeddings.html") and page.count("data:image/png;base64,") == 12
    assert atypical[0]["request_id"] in page and "drifted" in page and "sharpness" in page
