"""`kubeloop init`: a starter config profiled from a table or an image manifest, every value
commented with why; it loads, its rules pass the data they came from and stop worse data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from components.common.config_loader import load_config
from tests.messy_table import messy_table, write_messy_table


def init(tmp_path: Path, data: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "config.yaml"
    return main(["init", "--data", str(data), "--out", str(out), *args]), out


def test_a_messy_table_gets_its_task_roles_rules_and_split(tmp_path: Path) -> None:
    code, out = init(tmp_path, write_messy_table(tmp_path / "my.csv"), "--label", "y")
    assert code == 0
    config = load_config(out)
    dataset = config.dataset
    assert (dataset.task, dataset.positive_value) == ("binary", "yes")  # the rarer value, quoted in YAML
    assert (dataset.id_column, dataset.time_column) == ("customer_ref", "signup")
    assert dataset.features == ["plan", "region", "age", "monthly_spend", "support_calls"]
    assert dataset.categorical == ["plan", "region", "support_calls"]
    assert dataset.split.strategy == "temporal"  # ISO dates in every row: evaluate on the latest
    rules = config.validation.columns
    assert rules["age"].min is not None and rules["age"].max is not None
    assert rules["age"].min <= 18 and rules["age"].max >= 89 and rules["age"].min == int(rules["age"].min)
    assert rules["monthly_spend"].min == 0.0  # amounts stay non-negative
    assert rules["region"].allowed == ["east", "north", "south", "west"]
    assert rules["region"].severity == "warning"  # a new region is reported, the run goes on
    assert rules["region"].max_null_fraction is not None and rules["region"].max_null_fraction > 0.05
    assert rules["customer_ref"].unique and rules["y"].allowed == ["no", "yes"]
    text = out.read_text()
    assert "positive_value: 'yes'" in text and "# a different value in every row" in text
    assert "region: text, a category" in text  # what infer decided, said in the header
    assert f"kubeloop run --config {out}" in text


def test_the_starters_rules_pass_their_data_and_stop_a_worse_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_messy_table(tmp_path / "my.csv")
    _, out = init(tmp_path, data, "--label", "y")
    assert main(["validate", "--config", str(out)]) == 0
    worse = messy_table(seed=4)
    worse.loc[3, "age"] = 300.0
    worse.loc[5, "region"] = "mars"
    worse.to_csv(tmp_path / "later.csv", index=False)
    capsys.readouterr()
    assert main(["validate", "--config", str(out), "--data", str(tmp_path / "later.csv")]) == 1
    report = capsys.readouterr().out
    failed = [line for line in report.splitlines() if "| age |" in line and "FAIL" in line]
    assert failed and "300" in failed[0], report
    assert any("| region |" in line and "warning" in line for line in report.splitlines()), report


def test_an_existing_config_is_kept_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_messy_table(tmp_path / "my.csv", rows=300)
    (tmp_path / "config.yaml").write_text("name: mine\n")
    code, out = init(tmp_path, data, "--label", "y")
    assert code == 2 and out.read_text() == "name: mine\n"
    assert "pass --force" in capsys.readouterr().err
    code, out = init(tmp_path, data, "--label", "y", "--force")
    assert code == 0 and load_config(out).name == "my"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no draft left


def test_the_label_is_found_by_name_and_a_missing_one_is_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = messy_table(rows=300).rename(columns={"y": "Outcome"})
    frame.to_csv(tmp_path / "a.csv", index=False)
    code, out = init(tmp_path, tmp_path / "a.csv")
    assert code == 0 and load_config(out).dataset.label == "Outcome"
    frame.rename(columns={"Outcome": "status"}).to_csv(tmp_path / "b.csv", index=False)
    code, _ = init(tmp_path, tmp_path / "b.csv", "--force")
    said = capsys.readouterr().err
    assert code == 2 and "pass --label" in said and "status" in said
    code, _ = init(tmp_path, tmp_path / "b.csv", "--force", "--label", "nope")
    assert code == 2 and "'nope' is not a column" in capsys.readouterr().err


def test_a_quantity_is_refused_and_several_classes_are_multiclass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = messy_table(rows=400)
    frame["y"] = np.random.default_rng(0).normal(100, 15, len(frame))
    frame.to_csv(tmp_path / "q.csv", index=False)
    code, _ = init(tmp_path, tmp_path / "q.csv", "--label", "y")
    assert code == 2 and "a quantity rather than classes" in capsys.readouterr().err
    frame["y"] = np.random.default_rng(0).choice(["benign", "malignant", "uncertain"], len(frame))
    frame.to_csv(tmp_path / "m.csv", index=False)
    code, out = init(tmp_path, tmp_path / "m.csv", "--label", "y")
    dataset = load_config(out).dataset
    assert code == 0 and dataset.task == "multiclass"
    assert dataset.classes == ["benign", "malignant", "uncertain"]


def test_an_unreadable_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "semi.csv").write_text("a;b;y\n1;2;0\n")
    code, out = init(tmp_path, tmp_path / "semi.csv", "--label", "y")
    assert code == 2 and "semicolon-separated" in capsys.readouterr().err and not out.exists()


def test_an_image_manifest_gets_the_image_settings_of_its_devices(tmp_path: Path) -> None:
    from examples.screening_images.generate import write

    manifest = write(
        tmp_path / "exams.csv", rows=120, prevalence=0.1, scanners={"A": 0.5, "B": 0.3, "C": 0.2}, seed=1
    )
    code, out = init(tmp_path, manifest)
    assert code == 0
    config = load_config(out)
    dataset = config.dataset
    assert (dataset.modality, dataset.image_column, dataset.label) == ("images", "image", "label")
    assert (dataset.group_column, dataset.device_column) == ("patient_id", "scanner")
    assert dataset.split.strategy == "group"  # both views of a patient in one split
    # Every scanner's files were probed: A's 8-bit PNG, B's 16-bit PNG, C's 12-bit DICOM.
    assert dataset.image.bounds.bit_depths == [8, 12, 16] and dataset.image.channels == 1
    assert max(dataset.image.size) <= 128
    assert main(["validate", "--config", str(out)]) == 0  # the gate passes the data it came from


def test_a_table_on_the_s3_server_is_profiled_in_place(tmp_path: Path, s3_env: dict[str, str]) -> None:
    from components.common.s3store import S3Store

    S3Store.from_uri("s3://kubeloop-init").upload_file(
        "exports/my.csv", write_messy_table(tmp_path / "my.csv")
    )
    out = tmp_path / "config.yaml"
    assert (
        main(["init", "--data", "s3://kubeloop-init/exports/my.csv", "--label", "y", "--out", str(out)]) == 0
    )
    dataset = load_config(out).dataset
    assert dataset.path == "s3://kubeloop-init/exports/my.csv" and dataset.id_column == "customer_ref"


def test_an_image_manifest_on_the_s3_server_finds_its_images_beside_it(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    from components.common.s3store import S3Store
    from examples.screening_images.generate import write

    manifest = write(
        tmp_path / "exams.csv", rows=60, prevalence=0.1, scanners={"A": 0.5, "B": 0.3, "C": 0.2}, seed=2
    )
    bucket = S3Store.from_uri("s3://kubeloop-init")
    for path in [manifest, *(tmp_path / "exams_images").iterdir()]:
        bucket.upload_file(f"site-a/{path.relative_to(tmp_path)}", path)
    out = tmp_path / "config.yaml"
    # Relative image paths name files beside the manifest in the bucket, not in this folder.
    assert main(["init", "--data", "s3://kubeloop-init/site-a/exams.csv", "--out", str(out)]) == 0
    dataset = load_config(out).dataset
    assert dataset.modality == "images" and dataset.image.bounds.bit_depths == [8, 12, 16]
