"""Reference profiles: built from trusted data, they catch what moved in new data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.config import ValidationConfig
from components.common.registry import Registry
from components.common.store import LocalStore
from components.validate_data.checks import feature_columns, validate_frame
from components.validate_data.profile import build_profile, profile_expectations, suite_json
from components.validate_data.reference import reference_profile
from examples.screening.generate import generate
from tests.conftest import screening_dataset

DATASET = screening_dataset()


@pytest.fixture(scope="module")
def profile() -> dict:
    reference = generate(rows=8000, prevalence=0.03, seed=1)
    return build_profile(reference, DATASET, feature_columns(reference, DATASET), "reference v1")


def _profile_failures(frame: pd.DataFrame, profile: dict, rules: ValidationConfig | None = None) -> dict:
    results, _ = validate_frame(frame, DATASET, rules or ValidationConfig(), profile)
    return {
        (r.check, r.column): r for r in results if not r.passed and r.check.startswith(("profile", "unseen"))
    }


def test_profile_records_types_ranges_categories_and_prevalence(profile: dict) -> None:
    age = profile["columns"]["age"]
    assert age["family"] == "number" and 40 <= age["min"] < age["max"] <= 80
    assert profile["columns"]["breast_density"]["family"] == "integer"
    assert profile["columns"]["scanner"]["categories"] == ["A"]
    assert profile["prevalence"] == pytest.approx(0.04, abs=0.01)
    assert profile["rows"] == 8000 and "exam_id" not in profile["columns"]


def test_data_like_the_reference_passes(profile: dict) -> None:
    assert _profile_failures(generate(rows=4000, prevalence=0.03, seed=2), profile) == {}


def test_what_moved_is_caught_with_its_severity(profile: dict) -> None:
    moved = generate(rows=4000, prevalence=0.03, scanners={"A": 0.5, "B": 0.5}, seed=3)
    moved.loc[moved.index[:300], "lesion_size_mm"] = np.nan
    moved["prior_exams"] = moved["prior_exams"].astype(str)
    rules = ValidationConfig(max_null_fraction=0.2, constant_columns="ignore")
    failed = _profile_failures(moved, profile, rules)
    assert failed[("profile_nulls", "lesion_size_mm")].blocking  # a null burst
    assert failed[("profile_dtype", "prior_exams")].blocking  # numbers arrived as text
    assert failed[("unseen_categories", "scanner")].severity == "warning"  # a new scanner
    assert "B" in failed[("unseen_categories", "scanner")].observed
    assert failed[("profile_range", "intensity_mean")].severity == "warning"  # scanner B renders brighter
    assert "of reference v1's [" in failed[("profile_range", "intensity_mean")].expected
    assert "99.0%: " in failed[("profile_range", "intensity_mean")].observed


def test_prevalence_shift_fails(profile: dict) -> None:
    diagnostic = generate(rows=4000, prevalence=0.5, seed=4)
    assert _profile_failures(diagnostic, profile)[("profile_prevalence", "label")].blocking


def test_tolerances_are_configurable(profile: dict) -> None:
    moved = generate(rows=4000, prevalence=0.03, scanners={"A": 0.5, "B": 0.5}, seed=3)
    strict = ValidationConfig(profile={"range_severity": "error", "unseen_categories": "error"})
    failed = _profile_failures(moved, profile, strict)
    assert failed[("profile_range", "intensity_mean")].blocking
    assert failed[("unseen_categories", "scanner")].blocking
    loose = ValidationConfig(profile={"range_margin": 5.0})
    assert ("profile_range", "intensity_mean") not in _profile_failures(moved, profile, loose)


def test_suite_json_is_a_loadable_ge_suite(profile: dict) -> None:
    import great_expectations as gx

    document = suite_json(
        profile_expectations(
            profile, set(profile["columns"]), DATASET, ValidationConfig().profile, "__kubeloop_positive"
        ),
        "ref",
    )
    suite = gx.ExpectationSuite(**document)
    assert suite.name == "ref" and len(suite.expectations) == len(document["expectations"]) > 20


def test_reference_is_the_champions_profile_or_a_named_dataset(tmp_path: Path, profile: dict) -> None:
    from components.common.config_loader import load_config
    from tests.conftest import REPO

    store = LocalStore(tmp_path / "store")
    config = load_config(REPO / "examples/screening/config.yaml")
    assert reference_profile(store, config) is None  # no model yet
    registry = Registry(store)
    registry.register("screening", {"data_profile.json": b'{"columns": {}, "prevalence": 0.02}'}, {})
    assert reference_profile(store, config) is None  # registered, but not in production
    registry.set_stage("screening", "1", "production")
    assert reference_profile(store, config)["source"] == "champion screening v1"
    generate(rows=500, seed=5).to_csv(tmp_path / "trusted.csv", index=False)
    named = config.model_copy(
        update={"validation": ValidationConfig(profile={"reference_data": str(tmp_path / "trusted.csv")})}
    )
    assert reference_profile(store, named)["source"] == f"reference {tmp_path / 'trusted.csv'}"
    off = config.model_copy(update={"validation": ValidationConfig(profile={"use_champion": False})})
    assert reference_profile(store, off) is None


def test_screening_profile_flags_scanner_b_and_passes_fresh_scanner_a() -> None:
    from components.common.config_loader import load_config
    from tests.conftest import REPO

    config = load_config(REPO / "examples/screening/config.yaml")
    assert config.dataset.generator is not None
    params = dict(config.dataset.generator.params)
    reference = generate(**params)  # the example's own scanner-A data
    profile = build_profile(
        reference, config.dataset, feature_columns(reference, config.dataset), "scanner A"
    )

    fresh, _ = validate_frame(generate(**{**params, "seed": 8}), config.dataset, config.validation, profile)
    assert [r for r in fresh if r.blocking] == []
    assert [r for r in fresh if not r.passed and r.check.startswith(("profile", "unseen"))] == []

    scanner_b, _ = validate_frame(
        generate(**{**params, "scanners": {"B": 1.0}, "seed": 9}), config.dataset, config.validation, profile
    )
    flagged = {(r.check, r.column) for r in scanner_b if not r.passed}
    assert ("unseen_categories", "scanner") in flagged
    assert {("profile_range", "intensity_mean"), ("profile_range", "texture_contrast")} <= flagged
    assert [r for r in scanner_b if r.blocking] == []  # flagged as warnings: retraining may proceed


def test_column_order_survives_a_stored_profile(profile: dict, tmp_path: Path) -> None:
    from components.validate_data.profile import column_order_check

    store = LocalStore(tmp_path)
    store.write_json("profile.json", profile)  # stores sort keys: the dict order is lost
    stored = store.read_json("profile.json")
    columns = list(generate(rows=10, seed=5).columns)
    assert column_order_check(columns, stored, "warning").passed
    swapped = columns[:]
    swapped[3], swapped[5] = swapped[5], swapped[3]
    assert not column_order_check(swapped, stored, "warning").passed
