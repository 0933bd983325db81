"""One definition of the rollout and retraining settings: CRDs and spec names derive from the config."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel, Field, ValidationError

from components.common.config import DeploymentConfig, RolloutAnalysis
from components.common.monitoring_config import MonitoringConfig, duration_seconds
from components.deploy.analysis import AnalysisSettings
from operators.crds import (
    ANALYSIS_DURATIONS,
    ANALYSIS_FIELDS,
    POLICY_GROUPS,
    POLICY_REFINEMENTS,
    analysis_schema,
    model_rollout_crd,
    monitoring_field,
    policy_fields,
    retrain_policy_crd,
)
from operators.retrain import monitoring_section
from operators.rollout import SpecError, parse_spec
from operators.spec_schema import camel, default_of, description, duration_text, field_property
from tests.k8s import apply_defaults, crd_schema

BARE = {"model": "screening", "seldonDeployment": "screening", "candidate": "2"}
FIELDS = RolloutAnalysis.model_fields
PROPERTIES = analysis_schema()["properties"]


def test_the_analysis_settings_are_the_config_model_itself() -> None:
    assert AnalysisSettings is RolloutAnalysis
    assert DeploymentConfig().analysis == RolloutAnalysis()


def test_camel_case_names_round_trip_to_every_config_field() -> None:
    assert (
        camel("max_p50_ratio") == "maxP50Ratio" and camel("min_latency_increase_ms") == "minLatencyIncreaseMs"
    )
    assert sorted(ANALYSIS_FIELDS.values()) == sorted(FIELDS)  # every field, each once
    assert set(ANALYSIS_FIELDS) == set(PROPERTIES)
    for key, name in ANALYSIS_FIELDS.items():
        assert key == ANALYSIS_DURATIONS.get(name, camel(name))


def test_every_field_has_its_default_and_description_in_the_crd() -> None:
    for key, name in ANALYSIS_FIELDS.items():
        field, prop = FIELDS[name], PROPERTIES[key]
        assert prop["description"].startswith(description(field)), key
        if name in ANALYSIS_DURATIONS:
            assert duration_seconds(prop["default"]) == default_of(field)
        elif default_of(field) is None:
            assert "default" not in prop and prop["nullable"] is True, key
        else:
            assert prop["default"] == default_of(field), key


def _accepted_by_config(name: str, value: Any) -> bool:
    try:
        RolloutAnalysis(**{name: value})
    except ValidationError:
        return False
    return True


def _accepted_by_crd(prop: dict[str, Any], value: Any) -> bool:
    return jsonschema.Draft4Validator(prop).is_valid(value)  # OpenAPI v3.0 bounds are draft 4's


@pytest.mark.parametrize("name", [n for n in FIELDS if n not in ANALYSIS_DURATIONS])
def test_the_crd_accepts_exactly_the_values_the_config_accepts(name: str) -> None:
    """Probes at, just inside and just outside every bound: the CRD and the config agree."""
    prop = PROPERTIES[camel(name)]
    edges = [prop[k] for k in ("minimum", "maximum") if k in prop] + [0, 1]
    probes = {e + d for e in edges for d in (-1, -1e-9, 0, 1e-9, 1)}
    if prop["type"] == "integer":
        probes = {int(round(p)) for p in probes}
    for value in sorted(probes):
        assert _accepted_by_config(name, value) == _accepted_by_crd(prop, value), (name, value)


def test_a_rollout_without_analysis_gets_exactly_the_configs_defaults() -> None:
    spec = crd_schema(model_rollout_crd())["properties"]["spec"]
    for body in (BARE, apply_defaults(BARE, spec)):
        parsed = parse_spec(body)
        assert parsed.analysis == RolloutAnalysis() == DeploymentConfig().analysis
        assert parsed.interval_s == RolloutAnalysis().interval_seconds


def test_spec_values_reach_their_config_fields_and_bad_ones_name_the_spec_key() -> None:
    parsed = parse_spec({**BARE, "analysis": {"interval": "5m", "maxP99Ratio": 1.3, "minRecall": 0.8}})
    assert parsed.interval_s == 300 and parsed.analysis.interval_seconds == 300
    assert parsed.analysis.max_p99_ratio == 1.3 and parsed.analysis.min_recall == 0.8
    with pytest.raises(SpecError, match=r"spec\.analysis\.maxPsi"):
        parse_spec({**BARE, "analysis": {"maxPsi": -1}})
    with pytest.raises(SpecError, match=r"spec\.analysis\.interval"):
        parse_spec({**BARE, "analysis": {"interval": "soon"}})
    with pytest.raises(SpecError, match=r"spec\.analysis\.maxPSI is not a setting"):
        parse_spec({**BARE, "analysis": {"maxPSI": 0.1}})


def test_changing_the_one_definition_changes_the_crd() -> None:
    class Tuned(RolloutAnalysis):
        max_psi: float = Field(0.3, ge=0.05)
        """A tuned limit."""
        interval_seconds: float = Field(300.0, gt=0)
        """Every five minutes."""

    tuned = analysis_schema(Tuned)["properties"]
    assert tuned["maxPsi"] == {
        "type": "number",
        "description": "A tuned limit.",
        "default": 0.3,
        "minimum": 0.05,
    }
    assert tuned["interval"]["default"] == "5m" and tuned["interval"]["description"].startswith("Every five")
    assert {k: v for k, v in tuned.items() if k not in ("maxPsi", "interval")} == {
        k: v for k, v in PROPERTIES.items() if k not in ("maxPsi", "interval")
    }


def test_durations_are_spelt_in_their_largest_exact_unit() -> None:
    assert [duration_text(s) for s in (60.0, 90, 3600, 86400 * 7, 45)] == ["1m", "90s", "1h", "7d", "45s"]
    with pytest.raises(ValueError):
        duration_text(1.5)


def test_every_retrain_policy_setting_derives_from_its_monitoring_field() -> None:
    spec = crd_schema(retrain_policy_crd())["properties"]["spec"]["properties"]
    defaults = MonitoringConfig()
    for group, names in policy_fields().items():
        assert len(names) == len(POLICY_GROUPS[group])  # no two paths share a spec name
        for key, path in names.items():
            section, name = monitoring_field(path)
            expected = {**field_property(section, name), **POLICY_REFINEMENTS.get(f"{group}.{key}", {})}
            expected.pop("default", None)
            got = dict(spec[group]["properties"][key])
            # No server-side default (it would override the ConfigMap's value); the description
            # says where an unset one comes from, and the config's default.
            text = got.pop("description")
            assert text.startswith(expected.pop("description")), (group, key)
            assert got == expected, (group, key)
            value: Any = defaults
            for part in path.split("."):
                value = getattr(value, part)
            assert f"Unset: the ConfigMap's monitoring.{path}" in text, (group, key)
            if value is not None and not isinstance(value, dict | BaseModel):
                assert json.dumps(value) in text, (group, key, text)


def test_a_policy_spec_lands_on_the_config_paths_it_names() -> None:
    spec = {
        "logs": {"predictors": ["main"]},
        "drift": {"minRows": 7, "features": {"age": {"test": "ks", "ignore": True}}},
        "check": {"schedule": "5 * * * *", "image": "not/config"},
        "trigger": {"dryRun": True},
        "retraining": {"pipelineVersion": "v9", "experiment": "x", "minTrafficRows": 50, "warmStart": True},
    }
    section = monitoring_section(spec)
    assert section == {
        "predictors": ["main"],
        "min_rows": 7,
        "features": {"age": {"test": "ks", "ignore": True}},
        "schedule": "5 * * * *",
        "trigger": {"dry_run": True, "pipeline_version": "v9", "experiment": "x"},
        "retraining": {"min_traffic_rows": 50, "warm_start": True},
    }
    config = MonitoringConfig(**section)
    assert config.trigger.pipeline_version == "v9" and config.features["age"].ignore
