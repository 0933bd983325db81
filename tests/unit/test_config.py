"""Config: every shipped config loads; broken ones list every problem with its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.common.config import KubeloopConfig
from components.common.config_loader import ConfigError, apply_overrides, load_config
from tests.conftest import REPO

SHIPPED = sorted(REPO.glob("examples/*/config.yaml"))


def test_there_are_shipped_configs() -> None:
    assert {p.parent.name for p in SHIPPED} >= {"screening", "breast_cancer"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_every_shipped_config_loads(path: Path) -> None:
    config = load_config(path)
    assert Path(config.dataset.path).is_absolute()
    assert config.dataset.generator is not None or Path(config.dataset.path).exists()


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _minimal(tmp_path: Path) -> dict:
    data = tmp_path / "d.csv"
    data.write_text("x,label\n1,0\n")
    return {"name": "demo", "dataset": {"path": str(data), "label": "label"}}


def test_defaults_are_written_out_and_hash_is_stable(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, _minimal(tmp_path)))
    resolved = config.resolved()
    assert resolved["training"]["epochs"] == 20
    assert resolved["dataset"]["split"]["strategy"] == "random"
    assert resolved["calibration"]["bins"] == 15
    again = load_config(_write(tmp_path, _minimal(tmp_path)))
    assert config.digest() == again.digest()
    changed = load_config(_write(tmp_path, _minimal(tmp_path)), ["training.epochs=3"])
    assert changed.digest() != config.digest()
    assert KubeloopConfig.from_json(config.to_json()) == config


def test_overrides_parse_values_as_yaml(tmp_path: Path) -> None:
    config = load_config(
        _write(tmp_path, _minimal(tmp_path)),
        [
            "training.epochs=3",
            "training.hidden_sizes=[8, 4]",
            "evaluation.min_recall=0.8",
            "training.class_weighting=false",
        ],
    )
    assert config.training.epochs == 3
    assert config.training.hidden_sizes == [8, 4]
    assert config.evaluation.min_recall == 0.8
    assert config.training.class_weighting is False


def test_override_creates_missing_sections() -> None:
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}
    with pytest.raises(ConfigError, match="not key=value"):
        apply_overrides({}, ["training.epochs"])


def test_every_problem_is_reported_at_once_with_field_and_fix(tmp_path: Path) -> None:
    data = {
        "name": "Bad Name",
        "dataset": {"path": "nowhere.csv", "label": "label", "split": {"strategy": "sideways"}},
        "training": {"epoch": 3, "batch_size": "big", "learning_rate": -1},
        "calibraton": {},
    }
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, data))
    problems = "\n".join(info.value.problems)
    assert len(info.value.problems) == 7, problems
    assert "training.epoch: unknown field; remove it (did you mean 'epochs'?)" in problems
    assert "calibraton: unknown field; remove it (did you mean 'calibration'?)" in problems
    assert "training.batch_size:" in problems and "use a whole number" in problems
    assert "training.learning_rate:" in problems and "raise it" in problems
    assert "dataset.split.strategy:" in problems and "'random', 'temporal' or 'group'" in problems
    assert "name:" in problems
    assert "dataset.path: file" in problems and "does not exist" in problems


def test_cross_field_rules(tmp_path: Path) -> None:
    data = _minimal(tmp_path)
    data["dataset"]["split"] = {
        "strategy": "temporal",
        "test_fraction": 0.5,
        "validation_fraction": 0.3,
        "calibration_fraction": 0.2,
    }
    data["deployment"] = {"canary_steps": [50, 10, 100]}
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, data))
    text = str(info.value)
    assert "leaving 0.00 for training" in text
    assert "canary_steps [50, 10, 100] must increase" in text


def test_gpu_resources_must_match_the_process_count(tmp_path: Path) -> None:
    data = _minimal(tmp_path)
    data["training"] = {
        "nproc": 2,
        "resources": {"gpus": 4, "tolerations": [{"key": "nvidia.com/gpu", "value": "x"}], "cpu": "two"},
    }
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, data))
    text = str(info.value)
    assert "value 'x' needs operator: Equal" in text
    assert "training.resources.cpu" in text
    data["training"]["resources"] = {"gpus": 4}
    with pytest.raises(ConfigError, match=r"nproc \(2\) must equal resources.gpus \(4\).*training.nproc=4"):
        load_config(_write(tmp_path, data))
    data["training"]["nproc"] = 4
    assert load_config(_write(tmp_path, data)).training.resources.gpus == 4


def test_temporal_split_needs_a_time_column(tmp_path: Path) -> None:
    data = _minimal(tmp_path)
    data["dataset"]["split"] = {"strategy": "temporal"}
    with pytest.raises(ConfigError, match="needs dataset.time_column"):
        load_config(_write(tmp_path, data))


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_cli_rejects_a_broken_config_before_any_step(tmp_path: Path) -> None:
    path = _write(tmp_path, {"name": "demo", "dataset": {"label": "y"}, "trainig": {}})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "run",
            "--config",
            str(path),
            "--store",
            str(tmp_path / "store"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "dataset.path: Field required" in result.stderr
    assert "trainig: unknown field" in result.stderr
    assert not (tmp_path / "store" / "runs").exists()
