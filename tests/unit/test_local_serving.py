"""What `kubeloop serve` reads from a SeldonDeployment: one process per predictor, keyed by what it runs."""

from __future__ import annotations

import copy

import pytest

from components.deploy.local_serving import predictor_specs
from components.deploy.seldondeployment import (
    MODEL_CLASS,
    Predictor,
    ServingSettings,
    render_seldondeployment,
)


def sdep(*predictors: Predictor, workers: int = 2) -> dict:
    return render_seldondeployment(
        "screening",
        "kubeloop",
        "screening",
        list(predictors),
        ServingSettings(store_uri="/s", workers=workers),
    )


def test_each_predictor_runs_its_class_version_and_workers() -> None:
    specs = predictor_specs(sdep(Predictor("main", "1", 90), Predictor("canary", "2", 10), workers=3))
    assert [(s.name, s.version, s.model_class, s.workers) for s in specs] == [
        ("main", "1", MODEL_CLASS, 3),
        ("canary", "2", MODEL_CLASS, 3),
    ]


def test_a_weight_change_keeps_the_processes_and_a_new_version_replaces_one() -> None:
    before = predictor_specs(sdep(Predictor("main", "1", 90), Predictor("canary", "2", 10)))
    weights = predictor_specs(sdep(Predictor("main", "1", 50), Predictor("canary", "2", 50)))
    promoted = predictor_specs(sdep(Predictor("main", "2")))
    assert [s.key for s in weights] == [s.key for s in before]
    assert promoted[0].key not in {s.key for s in before}  # main now serves v2: a new process


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda p: p["componentSpecs"][0]["spec"]["containers"][0]["env"].clear(), "sets no MODEL_NAME"),
        (lambda p: p["graph"].update(name="other"), "no container named 'other'"),
        (lambda p: p["graph"]["children"].append({"name": "x"}), "single-model graphs only"),
    ],
)
def test_what_local_mode_cannot_run_is_refused_by_name(breakage, message: str) -> None:  # type: ignore[no-untyped-def]
    broken = copy.deepcopy(sdep(Predictor("main", "1")))
    breakage(broken["spec"]["predictors"][0])
    with pytest.raises(ValueError, match=message):
        predictor_specs(broken)
