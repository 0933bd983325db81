"""CLI commands that need no pipeline run: config, compile, models, stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cli.main import main
from components.common.registry import Registry
from components.common.store import LocalStore
from tests.conftest import REPO


def test_config_prints_every_default_and_the_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["config", "--config", str(REPO / "examples/breast_cancer/config.yaml"), "training.epochs=7"])
        == 0
    )
    out = capsys.readouterr().out
    body, _, hash_line = out.rpartition("# config hash ")
    resolved = yaml.safe_load(body)
    assert resolved["training"]["epochs"] == 7
    assert resolved["monitoring"]["drift_share"] == 0.5  # a default, written out
    assert hash_line.startswith("sha256:")


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: x\n")
    assert main(["config", "--config", str(path)]) == 2
    assert "dataset: Field required" in capsys.readouterr().err


def test_compile_writes_ir_manifests_and_kustomization(tmp_path: Path) -> None:
    assert main(["compile", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "image-fields.yaml",
        "kubeloop-monitoring.k8s.yaml",
        "kubeloop-monitoring.yaml",
        "kubeloop-recalibrate.k8s.yaml",
        "kubeloop-recalibrate.yaml",
        "kubeloop-retraining.k8s.yaml",
        "kubeloop-retraining.yaml",
        "kubeloop-training-gpu.k8s.yaml",
        "kubeloop-training-gpu.yaml",
        "kubeloop-training-images-gpu.k8s.yaml",
        "kubeloop-training-images-gpu.yaml",
        "kubeloop-training.k8s.yaml",
        "kubeloop-training.yaml",
        "kustomization.yaml",
    ]


def test_compile_refuses_overrides_without_a_config(tmp_path: Path) -> None:
    assert main(["compile", "--out", str(tmp_path), "training.nproc=2"]) == 2
    assert not tmp_path.joinpath("kustomization.yaml").exists()


def test_models_and_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    assert main(["models", "--store", str(store)]) == 0
    assert "no models registered" in capsys.readouterr().out
    registry = Registry(LocalStore(store))
    registry.register("m", {"model.onnx": b"x"}, {"run_id": "r1", "metrics": {"recall": 0.91}})
    assert main(["stage", "m", "1", "shadow", "--store", str(store)]) == 0
    assert main(["stage", "m", "5", "shadow", "--store", str(store)]) == 2
    assert "no ready version '5'" in capsys.readouterr().err
    assert main(["models", "m", "--store", str(store)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("│ 1"))
    assert "shadow" in row and "r1" in row and "0.9100" in row
    assert main(["models", "absent", "--store", str(store)]) == 1


def test_validate_command_exits_1_with_the_summary_and_writes_data_docs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples.screening.generate import generate

    frame = generate(rows=1500, prevalence=0.05, seed=2)
    frame.loc[frame.index[:20], "age"] = 200.0
    frame.to_csv(tmp_path / "bad.csv", index=False)
    args = [
        "validate",
        "--config",
        str(REPO / "examples/screening/config.yaml"),
        "--data",
        str(tmp_path / "bad.csv"),
        "--report",
        str(tmp_path / "out"),
        "validation.columns={age: {min: 18, max: 110}}",
    ]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "# Data validation: FAILED" in out
    assert "| max | age | 200 | <= 110.0 | **FAIL** (error) |" in out
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Data validation: FAILED")
    assert "kubeloop-data-gate" in (tmp_path / "out" / "data_docs.html").read_text()
    frame.assign(age=60.0).to_csv(tmp_path / "good.csv", index=False)
    assert main(args[:4] + [str(tmp_path / "good.csv"), args[-1]]) == 0


def test_validate_names_an_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.csv").write_text("")
    assert (
        main(
            [
                "validate",
                "--config",
                str(REPO / "examples/screening/config.yaml"),
                "--data",
                str(tmp_path / "empty.csv"),
            ]
        )
        == 1
    )
    assert "empty.csv: the file is empty" in capsys.readouterr().err


def test_recalibrate_shorthand_sets_one_target_and_clears_the_other() -> None:
    from cli.run import recalibration_overrides

    assert recalibration_overrides(["target_recall=0.97", "evaluation.min_recall=0.9"]) == [
        "calibration.target_recall=0.97",
        "calibration.target_specificity=null",
        "evaluation.min_recall=0.9",
    ]
    assert recalibration_overrides(["target_specificity=0.8"]) == [
        "calibration.target_specificity=0.8",
        "calibration.target_recall=null",
    ]


def test_serve_says_when_its_port_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = str(REPO / "examples" / "screening" / "config.yaml")
        assert main(["serve", "--config", config, "--port", str(port)]) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_schedule_prints_the_recurring_run_it_would_create(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(REPO / "examples" / "screening" / "config.yaml")
    assert main(["schedule", "--config", config, "--cron", "0 3 * * 1"]) == 0
    spec = json.loads(capsys.readouterr().out.split("\n(not created")[0])
    assert spec["pipeline"] == "kubeloop-retraining" and spec["cron_expression"] == "0 0 3 * * 1"
    assert spec["params"] == {"trigger": "schedule"} and spec["max_concurrency"] == 1
    assert main(["schedule", "--config", config]) == 1  # no retraining schedule configured
    assert "monitoring.retraining.schedule" in capsys.readouterr().err
    assert main(["schedule", "--config", config, "--cron", "0 3 * *"]) == 1
    assert "must have 5 fields" in capsys.readouterr().err
