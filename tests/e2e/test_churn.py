"""An ordinary messy table trains from a config that names only the data and the label: types,
the id and the date column are inferred and reported, gaps are imputed, and the served model
answers rows with missing values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from components.common.store import LocalStore
from tests.conftest import REPO
from tests.e2e.test_training_pipeline import kubeloop
from tests.serving import microservice, post

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("churn")
    result = kubeloop(
        [
            "run",
            "--config",
            str(REPO / "examples" / "churn" / "config.yaml"),
            "--store",
            str(root / "store"),
            f"dataset.path={root / 'churn.csv'}",
        ],
        root,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, result.stdout


def test_what_was_inferred_is_said_and_used(churn: tuple[Path, str]) -> None:
    root, stdout = churn
    assert "customer_id: a different value in every row, left out as a likely id" in stdout
    assert "signup_date: dates, left out of the features" in stdout
    assert "plan: text, a category" in stdout and "support_calls: 8 integer codes, a category" in stdout
    schema = json.loads((root / "store" / "models" / "churn" / "1" / "schema.json").read_text())
    assert set(schema["features"]) == {"plan", "region", "tenure_months", "monthly_charges", "support_calls"}
    assert set(schema["categorical"]) == {"plan", "region", "support_calls"}
    prep = json.loads((root / "store" / "models" / "churn" / "1" / "preprocessing.json").read_text())
    assert prep["indicators"] == ["monthly_charges"] and "monthly_charges#missing" in prep["encoded_names"]
    run = json.loads((root / "store" / "models" / "churn" / "1" / "lineage.json").read_text())["run_id"]
    report = LocalStore(root / "store").read_text(f"runs/{run}/validate_data/report.md")
    assert "Inferred from the data" in report and "| split_overlap |" in report


def test_the_served_model_answers_rows_with_missing_values(churn: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = churn
    version = root / "store" / "models" / "churn" / "1"
    features = json.loads((version / "schema.json").read_text())["features"]
    rows = [
        {"plan": "basic", "region": "south", "tenure_months": 3, "monthly_charges": None, "support_calls": 4},
        {"plan": None, "region": "north", "tenure_months": 40, "monthly_charges": 55.0, "support_calls": 0},
        {
            "plan": "premium",
            "region": "west",
            "tenure_months": 60,
            "monthly_charges": 30.5,
            "support_calls": 1,
        },
    ]
    with microservice(version, tmp_path) as server:
        status, reply = post(
            server["base"], {"jsonData": {"instances": [{f: r[f] for f in features} for r in rows]}}
        )
        assert status == 200, reply
        answers = reply["jsonData"]["predictions"]
        assert len(answers) == 3 and all(0 <= a["probability"] <= 1 for a in answers)
        assert np.isfinite([a["probability"] for a in answers]).all()
        status, reply = post(
            server["base"], {"jsonData": {"instances": [{**rows[2], "tenure_months": "long"}]}}
        )
        assert status == 400 and "tenure_months must be a number" in reply["status"]["info"]
