"""Reading datasets: clear errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from components.common.data import DataReadError, local_path, read_table


def test_csv_and_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "d.csv"), frame)
    pd.testing.assert_frame_equal(read_table(tmp_path / "d.parquet"), frame)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("latin1.csv", "x,name\n1,caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
        ("truncated.parquet", b"PAR1\x00\x00garbage", "cannot be parsed as parquet"),
        ("table.xlsx", b"PK\x03\x04", "unknown format '.xlsx'"),
        ("semicolons.csv", b"age;label\n50;0\n61;1\n", "looks semicolon-separated"),
        ("tabs.csv", b"age\tlabel\n50\t0\n", "looks tab-separated"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataReadError, match=message) as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataReadError, match="file not found"):
        read_table(tmp_path / "none.csv")


def test_s3_dataset_is_downloaded(tmp_path: Path, s3_env: dict[str, str]) -> None:
    from components.common.s3store import S3Store

    store = S3Store.from_uri("s3://kubeloop-data")
    store.write_bytes("screening/d.csv", b"x,label\n1,0\n2,1\n")
    with local_path("s3://kubeloop-data/screening/d.csv") as path:
        assert read_table(path)["label"].tolist() == [0, 1]
    assert not path.exists()  # the temporary copy is gone


def test_is_positive_compares_numbers_as_numbers_and_text_as_text() -> None:
    from components.common.tasks.binary import is_positive

    assert is_positive(pd.Series([0, 1, 1]), 1).tolist() == [False, True, True]
    assert is_positive(pd.Series([0.0, 1.0]), 1).tolist() == [False, True]
    assert is_positive(pd.Series([0, 1]), "1").tolist() == [False, True]
    assert is_positive(pd.Series(["benign", "malignant"]), "malignant").tolist() == [False, True]
    assert is_positive(pd.Series([0, 1]), "yes").tolist() == [False, False]
