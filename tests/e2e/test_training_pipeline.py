"""The training DAG end to end through the CLI and kfp.local, on both store backends."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from components.common.registry import Registry
from components.common.store import LocalStore
from examples.screening.generate import generate
from tests.conftest import REPO

pytestmark = pytest.mark.e2e
SCREENING = REPO / "examples" / "screening" / "config.yaml"
MODEL_FILES = {
    "model.onnx",
    "model.pt",
    "preprocessing.json",
    "calibration.json",
    "metrics.json",
    "lineage.json",
    "schema.json",
    "data_profile.json",
    "expectation_suite.json",
    "card.html",
    "predictions.parquet",
    "drift_reference.json",
    "drift_sample.parquet",
    "prediction_reference.json",
    "reliability.png",
    "loss_curve.png",
    "decision.json",
    "decision.md",
    "curves.json",
    "roc.png",
    "pr.png",
    "confusion.png",
    "error_gallery.html",
}


def kubeloop(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def run_screening(
    store: Path | str, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`kubeloop run` of the screening example into `store`, with extra arguments."""
    return kubeloop(["run", "--config", str(SCREENING), "--store", str(store), *args], cwd, env=env)


def small_screening(tmp_path: Path, *extra: str) -> list[str]:
    """Overrides that make the screening example small and quick."""
    return [
        f"dataset.path={tmp_path / 'data' / 'screening.parquet'}",
        "dataset.generator.params.rows=4000",
        "dataset.generator.params.prevalence=0.08",
        "training.epochs=4",
        "evaluation.min_recall=0.3",
        "evaluation.min_roc_auc=0.6",
        "validation.prevalence={min: 0.005, max: 0.25}",
        *extra,
    ]


def status_epochs(store: LocalStore, run_id: str) -> int:
    return int(store.read_json(f"runs/{run_id}/train/status.json")["metrics"]["epochs"])


def run_id_of(output: str) -> str:
    line = next(line for line in output.splitlines() if line.startswith("run "))
    return line.split()[1].rstrip(":")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("e2e")
    store = tmp / "store"
    result = run_screening(store, tmp, *small_screening(tmp))
    return {"tmp": tmp, "store": store, "result": result}


def test_run_succeeds_and_prints_the_summary(first_run: dict[str, Any]) -> None:
    result = first_run["result"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for step in ("validate_data", "train", "evaluate", "calibrate", "register", "deploy"):
        assert any(step in line and "succeeded" in line for line in result.stdout.splitlines()), step
    assert "registered screening version 1" in result.stdout
    assert "version None" not in result.stdout  # the summary's last line names the registered version
    assert "deployment.auto_deploy is false" in result.stdout  # the deploy step says how to deploy
    assert "epoch   1/4" in result.stdout  # training progress is shown


def test_run_registers_a_complete_version_with_lineage(first_run: dict[str, Any]) -> None:
    store = LocalStore(first_run["store"])
    registry = Registry(store)
    versions = registry.versions("screening")
    assert list(versions) == ["1"]
    assert set(versions["1"]["files"]) | {"card.html"} == MODEL_FILES
    assert set(store.list("models/screening/1")) == {f"models/screening/1/{f}" for f in MODEL_FILES}
    lineage = store.read_json("models/screening/1/lineage.json")
    run_id = run_id_of(first_run["result"].stdout)
    assert lineage["run_id"] == run_id and lineage["trigger"] == "manual"
    assert lineage["config"]["training"]["epochs"] == 4
    assert lineage["data"]["fingerprint"].startswith("sha256:")
    assert lineage["git"]["source"] == "git" and len(lineage["git"]["commit"]) == 40
    metrics = store.read_json("models/screening/1/metrics.json")
    assert metrics["recall"] >= 0.3 and metrics["roc_auc"] >= 0.6
    for name in (
        "recall",
        "specificity",
        "npv",
        "balanced_accuracy",
        "roc_auc",
        "pr_auc",
        "brier",
        "log_loss",
    ):
        low, high = metrics["intervals"][name]
        assert low <= metrics[name] <= high, name
    card = store.read_text("models/screening/1/card.html")
    assert "<h2>Error gallery</h2>" in card and "false negative" in store.read_text(
        "models/screening/1/error_gallery.html"
    )
    decision = store.read_text(f"runs/{run_id}/evaluate/decision.md")
    assert "| metric | value | 95% bootstrap interval |" in decision
    assert "logistic-regression baseline" in decision and 0.5 < metrics["baseline"]["roc_auc"] <= 1
    assert {r["column"] for r in metrics["slices"]} == {"scanner", "breast_density", "age"}
    assert "## Slices" in decision and "Worst slice for recall" in decision
    totals = {"false negative": metrics["fn"], "false positive": metrics["fp"]}
    for entry in metrics["errors"]:  # the top 10 (slice, error) counts, each a share of its kind
        assert entry["count"] == round(entry["share_of_kind"] * totals[entry["error"]]), entry
    by_scanner = [e["count"] for e in metrics["errors"] if e["where"].startswith("scanner=")]
    assert 0 < sum(by_scanner) <= metrics["fn"] + metrics["fp"]
    calibration = store.read_json("models/screening/1/calibration.json")
    candidates = calibration["selection"]["candidates"]
    assert calibration["configured"] == "auto" and set(candidates) == {
        "temperature",
        "platt",
        "isotonic",
        "none",
    }
    assert candidates[calibration["method"]] == min(candidates.values())  # the identity competes too
    assert calibration["after"]["ece"] < calibration["before"]["ece"]
    point = calibration["operating_point"]
    assert point["target"] == {"recall": 0.9} and point["rates"]["validation"]["recall"] >= 0.9
    assert metrics["threshold"] == point["threshold"]  # the gate measured the operating point
    predictions = pd.read_parquet(first_run["store"] / "models/screening/1/predictions.parquet")
    assert set(predictions["split"]) == {"calibration", "validation", "test"}
    card = store.read_text("models/screening/1/card.html")
    assert "screening &middot; version 1" in card and "data:image/png;base64," in card
    assert 'alt="reliability diagram"' in card and 'alt="loss curve"' in card
    assert 'alt="ROC curve"' in card and 'alt="precision-recall curve"' in card
    assert 'alt="confusion matrix"' in card
    assert "Operating point: operating threshold" in card and "No champion in production" in card
    assert "(95% CI " in card and "<th>npv</th>" in card and "<h2>Slices</h2>" in card
    assert store.read_bytes(f"runs/{run_id}/train/loss_curve.png").startswith(b"\x89PNG")
    assert len(store.read_json(f"runs/{run_id}/train/history.json")) == status_epochs(store, run_id)
    smoke = store.read_json(f"runs/{run_id}/train/status.json")["metrics"]
    assert smoke["smoke_val_loss_after"] < smoke["smoke_val_loss_before"]
    status = store.read_json(f"runs/{run_id}/register/status.json")
    assert status["status"] == "succeeded" and status["metrics"]["version"] == 1


def test_kfp_ui_outputs_are_written(first_run: dict[str, Any]) -> None:
    root = first_run["store"] / "kfp-local"
    markdown = list(root.glob("*/validate-data/report"))
    assert markdown and "# Data validation: passed" in markdown[0].read_text()
    metrics = json.loads(next(root.glob("*/evaluate/executor_output.json")).read_text())
    assert "classification" in json.dumps(metrics)
    assert list(root.glob("*/register/card"))
    assert 'alt="loss curve"' in next(root.glob("*/train/loss_curve")).read_text()


def test_second_run_records_parent_and_shows_in_models(first_run: dict[str, Any]) -> None:
    tmp, store = first_run["tmp"], first_run["store"]
    parent = run_id_of(first_run["result"].stdout)
    result = run_screening(
        str(store),
        tmp,
        "--parent-run",
        parent,
        "--trigger",
        "drift",
        *small_screening(tmp, "training.seed=1"),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    lineage = LocalStore(store).read_json("models/screening/2/lineage.json")
    assert lineage["parent_run"] == parent and lineage["trigger"] == "drift"
    staged = kubeloop(["stage", "screening", "1", "production", "--store", str(store)], tmp)
    assert staged.returncode == 0, staged.stderr
    listing = kubeloop(["models", "screening", "--store", str(store)], tmp)
    assert listing.returncode == 0
    rows = [line for line in listing.stdout.splitlines() if line.startswith("│ ")]
    assert len(rows) == 2
    assert "production" in rows[0] and "drift" in rows[1] and parent in rows[1]


def test_next_run_validates_against_the_champion_profile(first_run: dict[str, Any]) -> None:
    tmp, store = first_run["tmp"], first_run["store"]
    registry = Registry(LocalStore(store))
    registry.set_stage("screening", "1", "production")
    suite = LocalStore(store).read_json("models/screening/1/expectation_suite.json")
    assert suite["name"] == "screening-reference" and len(suite["expectations"]) > 20
    # Scanner B joins: the run goes on, and the report says what moved against v1's data.
    result = run_screening(
        str(store),
        tmp,
        *small_screening(
            tmp,
            "dataset.generator.params.scanners={A: 0.5, B: 0.5}",
            f"dataset.path={tmp / 'mixed.parquet'}",
            "evaluation.max_regression={}",  # this test is about the data gate, not the champion
        ),
    )
    assert result.returncode == 0, result.stdout[-3000:]
    # Both the declared set (scanner: {allowed: [A]}) and v1's profile report the new scanner.
    assert "validate_data: warning: allowed_values(scanner): unexpected, e.g. ['B']" in result.stdout
    assert "validate_data: warning: unseen_categories(scanner)" in result.stdout
    assert "validate_data: warning: profile_range(intensity_mean)" in result.stdout
    run_id = run_id_of(result.stdout)
    report = LocalStore(store).read_text(f"runs/{run_id}/validate_data/report.md")
    assert "Reference profile: champion screening v1." in report
    assert "| profile_range | intensity_mean |" in report


def test_a_worse_challenger_stops_at_the_champion_gate_unless_overridden(first_run: dict[str, Any]) -> None:
    tmp, store = first_run["tmp"], first_run["store"]
    registry = Registry(LocalStore(store))
    registry.set_stage("screening", "1", "production")
    before = set(registry.versions("screening"))
    weak = small_screening(
        tmp,
        "dataset.features=[age, prior_exams, scanner]",  # drops every lesion feature
        "validation.max_split_overlap=1",  # three coarse columns repeat across splits
        "evaluation.min_roc_auc=0.3",  # below chance is not the point: only the champion gate should fail
    )
    result = run_screening(store, tmp, *weak)
    assert result.returncode == 1 and "stopped at evaluate" in result.stdout, result.stdout[-3000:]
    assert "roc_auc candidate - champion v1 >= -0.02" in result.stdout
    run_dir = store / "runs" / run_id_of(result.stdout)
    decision = json.loads((run_dir / "evaluate" / "decision.json").read_text())
    failed = {c["metric"]: c for c in decision["checks"] if not c["passed"]}
    assert set(failed) <= {"roc_auc vs champion", "recall vs champion"}, failed  # only the champion gate
    roc = failed["roc_auc vs champion"]
    assert roc["champion"] - roc["candidate"] > 0.02
    assert "## Against the champion (production v1" in (run_dir / "evaluate" / "decision.md").read_text()
    assert not (run_dir / "register").exists() and set(registry.versions("screening")) == before

    reason = "pilot on site 3: accepted by Dr. Lee (ticket 42)"
    forced = run_screening(store, tmp, *weak, "--force-promote", "--reason", reason)
    assert forced.returncode == 0, forced.stdout[-3000:]
    version = max(registry.versions("screening"), key=int)
    assert version not in before and registry.versions("screening")[version]["forced"] is True
    gate = LocalStore(store).read_json(f"models/screening/{version}/lineage.json")["gate"]
    assert gate["forced"] is True and gate["reason"] == reason and gate["champion"] == "1"
    assert "roc_auc candidate - champion v1 >= -0.02" in gate["failed_checks"]
    assert all("champion v1" in check for check in gate["failed_checks"])
    card = LocalStore(store).read_text(f"models/screening/{version}/card.html")
    assert "Gate OVERRIDDEN" in card and "Dr. Lee" in card and "Against champion v1" in card


def test_recalibrate_moves_the_operating_point_without_retraining(first_run: dict[str, Any]) -> None:
    tmp, store = first_run["tmp"], first_run["store"]
    local = LocalStore(store)
    registry = Registry(local)
    registry.set_stage("screening", "1", "production")
    old = local.read_json("models/screening/1/calibration.json")["operating_point"]
    args = ["recalibrate", "--config", str(SCREENING), "--store", str(store), "--model", "1"]
    result = kubeloop([*args, "target_recall=0.97", *small_screening(tmp)], tmp)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version = max(registry.versions("screening"), key=int)
    new = f"models/screening/{version}"
    assert local.read_bytes(f"{new}/model.onnx") == local.read_bytes("models/screening/1/model.onnx")
    record = local.read_json(f"{new}/calibration.json")
    point = record["operating_point"]
    assert point["target"] == {"recall": 0.97} and point["rates"]["validation"]["recall"] >= 0.97
    assert point["threshold"] <= old["threshold"] and record["recalibrated_from"]["version"] == "1"
    assert record["params"] == local.read_json("models/screening/1/calibration.json")["params"]  # same map
    metrics = local.read_json(f"{new}/metrics.json")
    assert metrics["threshold"] == point["threshold"]  # evaluated at the new operating point
    assert metrics["recall"] >= local.read_json("models/screening/1/metrics.json")["recall"]
    lineage = local.read_json(f"{new}/lineage.json")
    assert lineage["trigger"] == "recalibrate" and lineage["parent_run"] == run_id_of(
        first_run["result"].stdout
    )
    assert "Recalibrated from version 1" in local.read_text(f"{new}/card.html")
    missing = kubeloop([*args[:-1], "99", *small_screening(tmp)], tmp)
    assert missing.returncode == 1 and "has no ready version '99'" in missing.stdout


def test_the_model_card_renders_offline_to_a_full_page(first_run: dict[str, Any], tmp_path: Path) -> None:
    from PIL import Image

    from scripts.render_card import render_png

    card = first_run["store"] / "models" / "screening" / "1" / "card.html"
    text = card.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(|@import""", text)  # nothing to fetch
    image = Image.open(render_png(card, tmp_path / "card.png")).convert("L")
    assert image.width == 1000 and image.height > 2500  # every section laid out, not a blank page
    dark = sum(1 for value in image.getdata() if value < 128)
    assert dark > 0.01 * image.width * image.height  # text and plots were drawn


def test_bad_data_stops_before_training_and_registers_nothing(tmp_path: Path) -> None:
    frame = generate(rows=3000, prevalence=0.08, seed=4)
    frame.loc[frame.index[:200], "lesion_size_mm"] = None
    data = tmp_path / "bad.csv"
    frame.to_csv(data, index=False)
    store = tmp_path / "store"
    result = run_screening(
        str(store),
        tmp_path,
        f"dataset.path={data}",
        "training.epochs=2",
    )
    assert result.returncode == 1
    assert "stopped at validate_data" in result.stdout
    assert "null_fraction(lesion_size_mm): 0.0667" in result.stdout
    assert not (store / "models").exists()
    run_dir = next((store / "runs").iterdir())
    assert not (run_dir / "train").exists()
    report = (run_dir / "validate_data" / "report.md").read_text()
    assert "| null_fraction | lesion_size_mm | 0.0667 | <= 0.0 | **FAIL** (error) |" in report
    assert "Sample of failing rows" in report


def failed_small_run(tmp_path: Path, override: str, step: str) -> tuple[str, Path]:
    """A small screening run that must stop at `step`, registering nothing: (stdout, run folder)."""
    store = tmp_path / "store"
    result = run_screening(store, tmp_path, *small_screening(tmp_path, override))
    assert result.returncode == 1, result.stdout[-3000:]
    assert f"stopped at {step}" in result.stdout
    assert not (store / "models").exists()
    return result.stdout, next((store / "runs").iterdir())


def test_failed_evaluation_gate_registers_nothing(tmp_path: Path) -> None:
    output, run_dir = failed_small_run(tmp_path, "evaluation.min_precision=0.99", "evaluate")
    assert "precision" in output
    assert json.loads((run_dir / "evaluate" / "decision.json").read_text())["passed"] is False
    assert (run_dir / "calibrate" / "calibration.json").exists()  # calibrate runs before the gate
    assert not (run_dir / "register").exists()


def test_a_model_that_cannot_learn_stops_at_the_smoke_test(tmp_path: Path) -> None:
    output, run_dir = failed_small_run(tmp_path, "training.learning_rate=1e-9", "train")
    assert "training loss did not decrease" in output
    assert "epoch   1/" not in output  # torchrun never started
    status = json.loads((run_dir / "train" / "status.json").read_text())
    assert status["status"] == "gate_failed" and "smoke test" in status["reason"]
    assert not (run_dir / "train" / "model.onnx").exists() and not (run_dir / "evaluate").exists()


def test_run_on_the_s3_store_with_categorical_embeddings(tmp_path: Path, s3_env: dict[str, str]) -> None:
    env = {**os.environ, **s3_env}
    result = run_screening(
        "s3://kubeloop-e2e/team-a",
        tmp_path,
        *small_screening(tmp_path, "training.categorical_encoding=embedding"),
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    listing = kubeloop(["models", "--store", "s3://kubeloop-e2e/team-a"], tmp_path, env=env)
    assert "screening" in listing.stdout and "│ 1 " in listing.stdout
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in result.stdout + result.stderr
    from components.common.s3store import S3Store

    prep = S3Store.from_uri("s3://kubeloop-e2e/team-a").read_json("models/screening/1/preprocessing.json")
    assert prep["encoding"] == "embedding" and prep["encoded_names"][-1] == "scanner#code"


def test_breast_cancer_example_runs(tmp_path: Path) -> None:
    result = kubeloop(
        [
            "run",
            "--config",
            str(REPO / "examples/breast_cancer/config.yaml"),
            "--store",
            str(tmp_path / "store"),
            f"dataset.path={tmp_path / 'bc.csv'}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    metrics = LocalStore(tmp_path / "store").read_json("models/breast-cancer/1/metrics.json")
    assert metrics["roc_auc"] >= 0.95
    assert len(pd.read_csv(tmp_path / "bc.csv")) == 569
