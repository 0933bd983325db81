"""Reading tables (CSV, Parquet) from local paths or s3:// URIs, with readable errors."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd


class DataReadError(ValueError):
    """A dataset file that cannot be read; the message names the file and the problem."""


@contextlib.contextmanager
def local_path(uri: str) -> Iterator[Path]:
    """A local path for `uri`: the file itself, or a temporary download of an s3:// object."""
    if not uri.startswith("s3://"):
        yield Path(uri)
        return
    from components.common.s3store import S3Store

    parts = urlsplit(uri)
    bucket_uri = f"s3://{parts.netloc}"
    key = parts.path.lstrip("/")
    store = S3Store.from_uri(bucket_uri)
    with tempfile.TemporaryDirectory(prefix="kubeloop-data-") as tmp:
        yield store.download_file(key, Path(tmp) / Path(key).name)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV or Parquet file (by suffix) atomically: a reader never sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    if target.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    tmp.replace(target)
    return target


def _check_delimiter(path: Path, frame: pd.DataFrame) -> None:
    """A one-column parse of a header full of ';', tabs or '|' means the wrong delimiter."""
    if frame.shape[1] != 1:
        return
    header = str(frame.columns[0])
    for delimiter, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        if header.count(delimiter) >= 1:
            raise DataReadError(
                f"{path}: the header '{header[:60]}' looks {name}-separated, but kubeloop reads "
                "comma-separated CSV; re-save it with commas (or as Parquet)"
            )


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file chosen by its suffix."""
    if not path.is_file():
        raise DataReadError(f"{path}: file not found; check dataset.path")
    if path.stat().st_size == 0:
        raise DataReadError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".gz"):
            frame = pd.read_csv(path)
            _check_delimiter(path, frame)
            return frame
    except UnicodeDecodeError as exc:
        raise DataReadError(f"{path}: not UTF-8 text ({exc.reason}); re-save it as UTF-8") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as exc:
        raise DataReadError(f"{path}: cannot be parsed as {suffix[1:]}: {exc}") from None
    raise DataReadError(f"{path}: unknown format '{suffix}'; use .csv or .parquet")
