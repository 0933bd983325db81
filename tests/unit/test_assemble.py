"""The retraining set: the reference data plus labeled served rows, their inputs from the request
log (a table's logged features; the served image files kept under served/), what the site
recorded beside each label (the device) kept."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from components.common.config_loader import load_config
from components.common.modalities.images import ImagesModality
from components.common.store import LocalStore
from components.monitor.assemble import assemble
from examples.screening import generate as screening
from examples.screening_images import generate as screening_images
from tests.conftest import REPO
from tests.monitor_fixtures import HOUR, T0, log_lines, monitor_config, write_log

IMAGES = REPO / "examples" / "screening_images" / "config.yaml"


def write_labels(store: LocalStore, model: str, records: list[dict[str, object]]) -> None:
    buffer = io.StringIO()
    pd.DataFrame(records).to_csv(buffer, index=False)
    store.write_bytes(f"labels/{model}/batch.csv", buffer.getvalue().encode())


def test_labeled_table_rows_join_the_reference_with_the_device_their_labels_name(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    reference = tmp_path / "screening.parquet"
    screening.write(reference, rows=300, prevalence=0.05, scanners={"A": 1.0}, seed=1)
    config = monitor_config(f"dataset.path={reference}", "monitoring.retraining.traffic_window=1d")
    lines, data = log_lines(T0, 120, "1", scanner="B", seed=3)
    write_log(store, T0, lines)
    labeled = [{"request_id": f"r3-{i}", "row": 0, "label": i % 2, "site_id": "S9"} for i in range(0, 120, 2)]
    write_labels(store, "screening", labeled)
    done = assemble(store, config, "runs/r/assemble/data.parquet", T0 + HOUR)
    assert (done.reference_rows, done.traffic_rows, done.labeled_rows_available) == (300, 60, 60)
    mixed = pd.read_parquet(done.path)
    traffic = mixed[mixed["exam_id"].astype(str).str.startswith("traffic:")]
    assert len(traffic) == 60 and set(traffic["scanner"]) == {"B"}
    assert traffic["age"].tolist() == data["age"].iloc[0:120:2].tolist()  # the logged features, in order
    assert set(traffic["site_id"]) == {"S9"}  # the label file's group column, not "traffic"


def image_log_line(request_id: str, offset: timedelta, stored: str | None) -> str:
    record = {
        "request_id": request_id,
        "time": (T0 + offset).isoformat(timespec="milliseconds"),
        "predictor": "main",
        "model": "screening-images",
        "model_version": "1",
        "status": 200,
        "latency_ms": 3.0,
        "row": 0,
        "probability": 0.1,
        "decision": 0,
        "image_width": 80,
    }
    if stored:
        record["stored"] = stored
    return json.dumps(record) + "\n"


def test_labeled_served_images_join_the_manifest_from_the_files_serving_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    manifest = tmp_path / "reference" / "images.csv"
    screening_images.write(manifest, rows=30, scanners={"A": 1.0}, seed=1, scale=0.5)
    screening_images.write(tmp_path / "served" / "b.csv", rows=12, scanners={"B": 1.0}, seed=2, scale=0.5)
    served = pd.read_csv(tmp_path / "served" / "b.csv")
    files = [tmp_path / "served" / name for name in served["image"]]
    lines, keys = [], []
    for i, file in enumerate(files):
        key = None
        if i % 3:  # serving's sample_share kept two in three
            data = file.read_bytes()
            key = f"served/screening-images/20260101/{hashlib.sha256(data).hexdigest()}.png"
            store.write_bytes(key, data)
        keys.append(key)
        lines.append(image_log_line(f"q-{i}", timedelta(minutes=i), key))
    folder = T0.strftime("%Y%m%dT%H%M")
    store.write_bytes(f"logs/screening-images/main/{folder}/1-a-000000.jsonl", "".join(lines).encode())
    write_labels(
        store,
        "screening-images",
        [{"request_id": f"q-{i}", "label": int(served["label"].iloc[i]), "scanner": "B"} for i in range(12)],
    )
    config = load_config(
        IMAGES,
        [f"dataset.path={manifest}", "monitoring.retraining.traffic_window=1d", "dataset.generator=null"],
    )
    done = assemble(store, config, "runs/r/assemble/data.parquet", T0 + HOUR)
    assert (done.traffic_rows, done.labeled_rows_without_inputs) == (8, 4)
    mixed = ImagesModality.from_settings(config.dataset.modality_settings()).read(Path(done.path))
    traffic = mixed.iloc[30:]
    assert traffic["image"].tolist() == [store.location(k) for k in keys if k]
    assert set(traffic["scanner"]) == {"B"} and set(traffic["patient_id"]) == {"traffic"}
    measured = ImagesModality.from_settings(config.dataset.modality_settings()).gate_table(mixed)
    assert measured["image_readable"].all() and set(measured["image_width"].iloc[30:]) == {40}

    with pytest.raises(ValueError, match="4 more had labels but their inputs were not kept.*sample_share"):
        assemble(
            store,
            load_config(
                IMAGES,
                [
                    f"dataset.path={manifest}",
                    "monitoring.retraining.traffic_window=1d",
                    "monitoring.retraining.min_traffic_rows=10",
                ],
            ),
            "runs/r2/assemble/data.parquet",
            T0 + HOUR,
        )
