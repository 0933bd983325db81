"""`kubeloop loop` for images (examples/image_loop): scanner A's model, scanner B joins, the
properties and embeddings drift, one retraining run on the served images labels came back for,
then the rollout; both scenarios, each decision asserted, each linked artifact there.

v1 is trained once, by `kubeloop run` into a store each scenario's loop starts from (a copy):
the loop takes the production model a store holds instead of training its own (the tabular
loop's tests cover the loop training v1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.registry import Registry
from components.common.store import LocalStore
from tests.conftest import REPO
from tests.e2e.test_loop import assert_index_links_exist, stage
from tests.e2e.test_training_pipeline import kubeloop

pytestmark = pytest.mark.e2e

IMAGE_LOOP = REPO / "examples" / "image_loop" / "config.yaml"
MODEL = "image-loop"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example's v1, trained by `kubeloop run` on its generated dataset: (store, dataset)."""
    root = tmp_path_factory.mktemp("image-loop-v1")
    store, dataset = root / "store", root / "data" / "scanner_a.csv"
    done = kubeloop(
        ["run", "--config", str(IMAGE_LOOP), "--store", str(store), f"dataset.path={dataset}"], Path.cwd()
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert list(Registry(LocalStore(store)).versions(MODEL)) == ["1"]  # registered, not deployed
    return store, dataset


def run_image_loop(
    trained: tuple[Path, Path], tmp_path: Path, scenario: str
) -> tuple[LocalStore, dict[str, Any], str]:
    """The example's loop on a copy of the trained store; its store, loop.json and output."""
    store = tmp_path / "loop"
    shutil.copytree(trained[0], store)
    done = kubeloop(
        [
            "loop",
            "--config",
            str(IMAGE_LOOP),
            "--store",
            str(store),
            f"scenario={scenario}",
            f"dataset.path={trained[1]}",
        ],
        Path.cwd(),
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "v1 of the store (run " in output and "no training" in output  # started from it
    local = LocalStore(store)
    sdep = local.read_json(f"deployments/{MODEL}/seldondeployment.json")
    assert str(store) in json.dumps(sdep) and str(trained[0]) not in json.dumps(sdep)  # served from the copy
    return local, local.read_json("loop/loop.json"), output


def assert_drift_found_once_on_properties_and_embeddings(store: LocalStore, record: dict[str, Any]) -> None:
    live, shifted = stage(record, "monitor")["facts"]["windows"]
    assert live["action"] == "none" and not {"data_drift", "embedding_drift"} & set(live["findings"])
    assert shifted["action"] == "trigger" and {"data_drift", "embedding_drift"} <= set(shifted["findings"])
    assert len(store.read_json(f"monitor/{MODEL}/state.json")["runs"]) == 1  # exactly one retraining run
    evidence = store.read_json(f"models/{MODEL}/2/lineage.json")["evidence"]
    assert {"image_width", "image_height"} <= set(evidence["drifted_features"])
    links = stage(record, "monitor")["links"]
    assert any(label.startswith("embedding drift") for label in links)  # the atypical images' page
    page = store.read_text(next(key for label, key in links.items() if label.startswith("embedding drift")))
    assert "data:image/png;base64," in page  # thumbnails of kept served images


def assert_retrained_on_served_images(store: LocalStore, record: dict[str, Any]) -> pd.DataFrame:
    run_id = stage(record, "retrain")["facts"]["run_id"]
    assembled = store.read_json(f"runs/{run_id}/assemble/assembled.json")
    assert assembled["traffic_rows"] > 0 and assembled["labeled_rows_without_inputs"] == 0
    rows = pd.read_parquet(assembled["path"])
    served = rows[rows["image"].str.contains("/served/")]
    assert len(served) == assembled["traffic_rows"] and set(served["scanner"]) == {"A", "B"}
    assert all(Path(p).is_file() for p in served["image"])  # the files serving kept
    return rows


def test_scanner_b_drifts_one_retraining_on_served_images_and_v2_is_promoted(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    store, record, output = run_image_loop(trained, tmp_path, "drift")
    assert [s["status"] for s in record["stages_run"]] == ["succeeded"] * 7, record
    assert_drift_found_once_on_properties_and_embeddings(store, record)
    assert_retrained_on_served_images(store, record)
    lineage = store.read_json(f"models/{MODEL}/2/lineage.json")
    assert lineage["trigger"] == "drift" and lineage["model"]["init_from"]["version"] == "1"  # warm start
    rollout = stage(record, "rollout")["facts"]
    moves = [(h["action"], h["weight"]) for h in rollout["history"] if h["action"] != "hold"]
    assert moves == [("start", 0), ("step", 10), ("step", 50), ("promote", 100)], moves
    assert rollout["client_failures"] == 0 and rollout["served_by"].get("canary", 0) > 0
    history = store.read_json(f"deployments/{MODEL}/rollout.json")["history"]
    assert next(h["reason"] for h in history if h["action"] == "step").startswith("shadow passed")
    stages = Registry(store).stages(MODEL)
    assert stages["production"] == "2" and "1" in stages["archived"]
    assert_index_links_exist(store)
    page = store.read_text("loop/index.html")
    for needed in ("error_gallery.html", "gate_gallery.html", "embeddings.html"):
        assert needed in page, f"the index does not link {needed}"
    assert page.count('class="thumbs"') == 2  # a strip of sent images per traffic phase
    assert "scenario drift: the candidate was promoted" in output


def test_a_rushed_image_candidate_forced_past_its_gate_is_rolled_back_by_the_shadow(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    store, record, output = run_image_loop(trained, tmp_path, "bad_candidate")
    assert_drift_found_once_on_properties_and_embeddings(store, record)
    decision = store.read_json(f"runs/{stage(record, 'retrain')['facts']['run_id']}/evaluate/decision.json")
    assert decision["passed"] is False and decision["forced"] is True
    history = store.read_json(f"deployments/{MODEL}/rollout.json")["history"]
    assert history[-1]["action"] == "rollback" and all(h["weight"] == 0 for h in history)
    stages = Registry(store).stages(MODEL)
    assert stages["production"] == "1" and "2" in stages["archived"]
    assert_index_links_exist(store)
    assert "scenario bad_candidate: the candidate was rolled back" in output
