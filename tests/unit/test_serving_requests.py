"""Request payloads to checked feature rows: every bad shape is a BadRequest that says what to fix."""

from __future__ import annotations

import math

import pytest

from components.common.modalities.tabular_requests import BadRequest, FeatureSchema, parse

SCHEMA = FeatureSchema(["age", "lesion_size_mm", "scanner"], frozenset({"scanner"}))


def test_ndarray_rows_in_feature_order_and_reordered_by_names() -> None:
    frame = parse([[61, 4.5, "A"], [45.0, 0.5, "B"]], None, SCHEMA)
    assert list(frame) == SCHEMA.features and frame["age"] == [61.0, 45.0]
    assert frame["scanner"] == ["A", "B"]
    named = parse([["A", 4.5, 61]], ["scanner", "lesion_size_mm", "age"], SCHEMA)
    assert named.records() == [{"age": 61.0, "lesion_size_mm": 4.5, "scanner": "A"}]
    assert parse([61, 4.5, "A"], None, SCHEMA).shape == (1, 3)  # one flat row


def test_named_features_as_one_object_or_instances() -> None:
    one = parse({"age": 61, "lesion_size_mm": 4.5, "scanner": "A"}, None, SCHEMA)
    many = parse({"instances": [{"age": 61, "lesion_size_mm": 4.5, "scanner": "A"}] * 3}, None, SCHEMA)
    assert one.shape == (1, 3) and many.shape == (3, 3)
    assert parse([{"age": 1, "lesion_size_mm": 2, "scanner": 3}], None, SCHEMA)["scanner"][0] == "3"


@pytest.mark.parametrize(
    ("data", "names", "message"),
    [
        ([[61, 4.5]], None, "each row needs 3 values (age, lesion_size_mm, scanner), got 2"),
        ([[61, 4.5, "A"], [61, 4.5]], None, "row 1: each row needs 3 values"),  # ragged rows
        ([[61, 4.5, "A"]], ["age", "size", "scanner"], "missing ['lesion_size_mm'], unknown ['size']"),
        ([[61, 4.5, "A"]], ["age", "age", "scanner"], "missing ['lesion_size_mm']"),
        ([[math.nan, 4.5, "A"]], None, "row 0: age is nan; the model needs a finite number"),
        ([[61, math.inf, "A"]], None, "row 0: lesion_size_mm is inf"),
        ([[61, "big", "A"]], None, "row 0: lesion_size_mm must be a number, got 'big'"),
        ([[True, 4.5, "A"]], None, "row 0: age must be a number, got True"),
        ([[61, 4.5, None]], None, "row 0: scanner is missing"),
        ([[[61, 4.5, "A"]]], None, "got 3 dimensions"),
        ([], None, "no rows"),
        ({"age": 61, "scanner": "A"}, None, "row 0: missing ['lesion_size_mm']"),
        ({"age": 61, "lesion_size_mm": 1, "scanner": "A", "x": 1}, None, "unknown ['x']"),
        ({"instances": "rows"}, None, "jsonData must be"),
        ({"age": 61, "lesion_size_mm": {"mm": 4}, "scanner": "A"}, None, "must be a number"),
    ],
)
def test_bad_payloads_say_what_is_wrong(data: object, names: list[str] | None, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(data, names, SCHEMA)
    assert message in str(caught.value)


def test_oversized_batches_are_refused() -> None:
    with pytest.raises(BadRequest, match="3 rows in one request; the limit is 2: split the batch"):
        parse([[61, 4.5, "A"]] * 3, None, SCHEMA, max_rows=2)


def test_checked_rows_encode_exactly_as_a_frame_does() -> None:
    import json

    import pandas as pd

    from components.common.preprocessing import Preprocessing
    from examples.screening.generate import generate

    frame = generate(rows=300, prevalence=0.1, scanners={"A": 0.6, "B": 0.4}, seed=3)
    features = [c for c in frame.columns if c not in ("exam_id", "exam_time", "site_id", "label")]
    schema = FeatureSchema(features, frozenset({"scanner"}))
    for encoding in ("one_hot", "embedding"):
        prep = Preprocessing.fit(frame.iloc[:200], features, ["scanner"], encoding)  # type: ignore[arg-type]
        rows = json.loads(frame[features].to_json(orient="records"))  # as a request carries them
        rows[0]["scanner"] = "C"  # a category the model never saw
        expected = prep.encode(pd.DataFrame(rows))
        assert (prep.encode(parse(rows, None, schema)) == expected).all()
        for one in (rows[:1], rows[1:2], rows[5:7]):  # a single row (the usual request), a pair
            assert (prep.encode(parse(one, None, schema)) == prep.encode(pd.DataFrame(one))).all()
