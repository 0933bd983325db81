"""The monitor compares an image version's served embeddings with its held-out ones: a new device
in the traffic is an embedding-drift finding that starts one retraining run with the evidence."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

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


def test_served_image_properties_drift_as_a_tables_features_do(tmp_path: Path) -> None:
    """Serving logs each image's properties under the gate's column names, so the data-drift
    check reads a window of served images against the version's profile of its training
    images: a new device (brighter, larger images) drifts image_mean and the size."""
    from PIL import Image

    from components.common.drift_reference import PREDICTION_REFERENCE, build_reference
    from components.common.modalities.image_gate import SCALAR_PROPERTIES
    from components.common.modalities.image_prep import ImageInputs
    from components.common.modalities.image_served import read_served

    inputs = ImageInputs((32, 32), 1, "letterbox", [0.3], [0.2])
    rng = np.random.default_rng(1)

    def served(shade: float, side: int) -> dict[str, object]:
        png = io.BytesIO()
        pixels = np.clip(rng.normal(shade, 20, (side, side)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(png, format="PNG")
        return read_served(png.getvalue(), "image 0", inputs).properties  # what the log keeps

    training = pd.DataFrame([served(70, 64) for _ in range(400)])
    reference, sample = build_reference(training, [], list(SCALAR_PROPERTIES), source="test")
    answers, _ = build_reference(pd.DataFrame({"probability": rng.beta(1, 12, 400), "decision": 0}), [])
    store = LocalStore(tmp_path / "store")
    registry = Registry(store)
    files = {
        "drift_reference.json": reference.to_json().encode(),
        "drift_sample.parquet": sample.to_parquet(index=False),
        PREDICTION_REFERENCE: answers.to_json().encode(),
        "metrics.json": json.dumps({"roc_auc": 0.9, "recall": 0.8}).encode(),
    }
    version = registry.register("screening", files, {"run_id": "test"})
    registry.set_stage("screening", version, "production")
    for hour, (shade, side) in enumerate([(70, 64), (150, 96)]):
        start = T0 + hour * HOUR
        lines, _ = log_lines(start, 300, version, "A", seed=hour)
        records = [json.loads(line) for line in lines]
        for record in records:
            record["features"] = served(shade, side)
        write_log(store, start, [json.dumps(r) + "\n" for r in records])
    result = monitor_pass(
        store, monitor_config(), RecordingLauncher(), now=T0 + 2 * HOUR, progress=lambda _: None
    )
    same, new_device = (c.data_drift for c in result.checks)
    assert same is not None and new_device is not None
    # Each column's test errs 5% of the time on its own (Evidently's semantics; the noise-driven
    # properties, file bytes, std and sharpness, move together): the ones a device changes stay.
    assert not {"image_mean", "image_width", "image_height"} & set(same["drifted_columns"])
    assert {"image_mean", "image_width", "image_height"} <= set(new_device["drifted_columns"])
    assert "data_drift" in result.checks[1].findings
    # The report reads a constant property (one device's image size) as Evidently does.
    assert result.checks[1].report and not any("report" in p for p in result.checks[1].problems)
