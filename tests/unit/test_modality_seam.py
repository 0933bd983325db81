"""The modality seam holds: steps reach tables only through `Modality`, and the tabular
modality gives training, evaluation and serving the same inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.common.artifacts import DatasetSchema
from components.common.config import DatasetConfig
from components.common.modalities import INPUTS_FILE, BadInput, TabularModality, modality_for
from components.common.tasks import BinaryTask
from components.common.training_config import TrainingConfig
from examples.screening.generate import generate

REPO = Path(__file__).resolve().parents[2]
MODALITY_CODE = re.compile(
    r"""modality\s*[!=]=|[!=]=\s*["'](tabular|images)["']|["']tabular["']|\bTabularModality\b"""
    r"""|\bPreprocessing\b|tabular_requests"""
    r"""|isinstance\([^)]*Modality\)"""
)
# Where tables are named on purpose: the modality package, the tabular encoding it uses, the
# config's choice, the schema's default and the built-in tabular network.
ALLOWED = {
    "components/common/modalities",
    "components/common/preprocessing.py",
    "components/common/config.py",
    "components/common/artifacts.py",
    "components/train/model.py",
}
FEATURES = ["age", "breast_density", "lesion_size_mm", "margin_irregularity", "intensity_mean", "scanner"]


def test_no_module_outside_the_modality_package_handles_tables_itself() -> None:
    offenders = []
    for folder in ("components", "pipelines", "operators", "cli", "loop"):
        for path in sorted((REPO / folder).rglob("*.py")) if (REPO / folder).is_dir() else []:
            relative = path.relative_to(REPO).as_posix()
            if any(relative == a or relative.startswith(a + "/") for a in ALLOWED):
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if MODALITY_CODE.search(line):
                    offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "modality-specific code belongs in components/common/modalities:\n" + "\n".join(
        offenders
    )


def test_the_detector_finds_a_branch_on_the_modality() -> None:
    assert MODALITY_CODE.search('if schema.modality == "images":')
    assert MODALITY_CODE.search("prep = Preprocessing.fit(frame, features, [])")
    assert MODALITY_CODE.search("isinstance(modality, TabularModality)")
    assert MODALITY_CODE.search('if self.preprocessing.get("kind") == "images":')
    assert not MODALITY_CODE.search("inputs = modality.fit_inputs(train, schema, cfg)")


@pytest.fixture(scope="module")
def fitted() -> tuple[TabularModality, object, DatasetSchema, pd.DataFrame]:
    frame = generate(rows=600, prevalence=0.2, scanners={"A": 0.5, "B": 0.5}, seed=5)
    frame.loc[frame.index[:30], "lesion_size_mm"] = np.nan  # imputed: nullable at serving
    schema = DatasetSchema(features=FEATURES, categorical=["scanner"], label="label", positive_value=1)
    modality = TabularModality()
    inputs = modality.fit_inputs(frame.iloc[:500], schema, TrainingConfig())
    return modality, inputs, schema, frame


def test_serving_decodes_rows_to_exactly_the_inputs_evaluation_scores(fitted) -> None:
    modality, inputs, schema, frame = fitted
    rows = frame.iloc[500:520]
    codec = modality.codec(inputs, schema)
    instances = [
        {f: (None if pd.isna(v) else (str(v) if f == "scanner" else float(v))) for f, v in row.items()}
        for row in rows[FEATURES].to_dict("records")
    ]
    instances[0]["lesion_size_mm"] = None
    expected = modality.feed(inputs, rows.assign(lesion_size_mm=[np.nan, *rows["lesion_size_mm"][1:]]))
    served = codec.feed(codec.decode({"instances": instances}, None, 100))
    assert served.keys() == expected.keys() == {modality.input_name}
    np.testing.assert_array_equal(served[modality.input_name], expected[modality.input_name])


def test_log_members_hold_each_row_s_features_as_json(fitted) -> None:
    modality, inputs, schema, frame = fitted
    codec = modality.codec(inputs, schema)
    batch = codec.decode([list(frame[FEATURES].iloc[550])], FEATURES, 10)
    (members,) = codec.log_members(batch)
    logged = json.loads("{" + members + "}")["features"]
    assert list(logged) == FEATURES and logged["scanner"] == frame["scanner"].iloc[550]
    assert logged["age"] == pytest.approx(float(frame["age"].iloc[550]))


def test_bad_rows_are_bad_input_naming_the_feature(fitted) -> None:
    modality, inputs, schema, _ = fitted
    codec = modality.codec(inputs, schema)
    with pytest.raises(BadInput, match="age must be a number"):
        codec.decode({"instances": [dict.fromkeys(FEATURES, "x")]}, None, 10)
    with pytest.raises(BadInput, match="limit is 1"):
        codec.decode([[1, 2, 3, 0.5, 100.0, "A"]] * 2, None, 1)


def test_the_example_row_decodes_and_metadata_names_the_features(fitted) -> None:
    modality, inputs, schema, _ = fitted
    codec = modality.codec(inputs, schema)
    feed = codec.feed(codec.example())
    assert feed[modality.input_name].shape == (
        1,
        len(modality.model_spec(inputs, BinaryTask("label", 1)).input_names),
    )
    assert codec.metadata() == [{"messagetype": "ndarray", "schema": {"names": FEATURES}}]
    warm = codec.feed(codec.decode(codec.example_payload(3), None, 10))[modality.input_name]
    np.testing.assert_array_equal(warm, np.repeat(feed[modality.input_name], 3, axis=0))


def test_inputs_round_trip_through_their_saved_form(fitted) -> None:
    modality, inputs, _, frame = fitted
    again = modality.load_inputs(json.loads(json.dumps(inputs.to_dict())))
    np.testing.assert_array_equal(modality.arrays(again, frame), modality.arrays(inputs, frame))
    assert INPUTS_FILE == "preprocessing.json"  # versions registered before the seam still load


def test_the_spec_and_the_default_model_follow_the_inputs(fitted) -> None:
    modality, inputs, _, _ = fitted
    spec = modality.model_spec(inputs, BinaryTask("label", 1))
    assert spec.modality == "tabular" and spec.n_outputs == 1
    assert spec.input_names[: len(spec.numeric)] == spec.numeric
    path, params = modality.default_model(TrainingConfig(hidden_sizes=[7]))
    assert path == "components.train.model:tabular_mlp" and params["hidden_sizes"] == [7]
    example = modality.example_input(spec)
    assert tuple(example.shape) == (2, spec.n_inputs)


def test_drift_columns_are_the_features_with_their_kinds(fitted) -> None:
    modality, _, schema, _ = fitted
    assert modality.drift_columns(schema) == (FEATURES, ["scanner"])


def test_the_modality_is_chosen_once_and_recorded() -> None:
    with pytest.raises(ValueError, match="dataset.modality is one of tabular"):
        modality_for("audio")
    old = DatasetSchema.from_dict({"features": ["a"], "label": "y"})  # a version from before the seam
    assert old.modality == "tabular" and old.make_modality().name == "tabular"
    config = DatasetConfig(path="data.csv", label="y")
    assert config.make_modality().name == "tabular"
    with pytest.raises(ValueError, match="modality"):
        DatasetConfig(path="data.csv", label="y", modality="audio")  # type: ignore[arg-type]


def test_serving_a_table_loads_no_image_library() -> None:
    """A tabular version's server imports no image library: its workers stay as small and as
    quick to start as before image serving."""
    import subprocess
    import sys

    probe = (
        "import sys, components.deploy.seldon_model, components.common.modalities as m;"
        "m.modality_for('tabular');"
        "print(sorted(n for n in ('PIL', 'pydicom', 'torch') if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
