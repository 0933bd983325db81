"""The per-image property table, computed in parallel worker processes, streamed and in order.

Workers read the files themselves (through a picklable `read_bytes`), so images never pass
between processes and only the small property rows come back; at most a few chunks per worker
are in flight, so memory stays bounded however long the manifest. This module imports numpy
and Pillow only (through `image_properties`).
"""

from __future__ import annotations

import multiprocessing
import pickle
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence, Sized
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from components.common.modalities.image_io import DEFAULT_MAX_PIXELS
from components.common.modalities.image_properties import PROPERTY_COLUMNS, image_properties

ReadBytes = Callable[[str], bytes]
"""Reads one file's bytes by its manifest name; FileNotFoundError or KeyError (the store's
NotFoundError) means the file is missing."""
Progress = Callable[[int, int], None]
"""Called with (rows done, rows in all) as the table grows."""

CHUNK = 32
"""Images a worker profiles per task: enough to hide the inter-process cost of small images."""
IN_FLIGHT_PER_WORKER = 4
"""Chunks submitted ahead per worker; bounds the rows waiting in memory."""


class FolderReader:
    """A picklable `read_bytes` for files under a folder.

    Args:
        root: The folder manifest names are relative to.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __call__(self, name: str) -> bytes:
        """The bytes of `root / name`; raises FileNotFoundError when it is absent."""
        return (self.root / name).read_bytes()

    def __repr__(self) -> str:
        return f"FolderReader({str(self.root)!r})"


def property_row(name: str, read_bytes: ReadBytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, Any]:
    """The property row of one manifest name; a file that cannot be read is a row with its error.

    Args:
        name: The manifest name.
        read_bytes: Reads the file.
        max_pixels: Most pixels a header may promise.

    Returns:
        The row (`PROPERTY_COLUMNS`); `error_check` is `missing` when the file is absent and
        `unreadable` when reading it failed otherwise.
    """
    try:
        data = read_bytes(name)
    except (FileNotFoundError, KeyError):
        return _failed(
            name, "missing", "the manifest lists it but there is no such file", "add it or fix the name"
        )
    except OSError as error:
        return _failed(
            name, "unreadable", f"reading it failed ({error})", "check its permissions or the store"
        )
    return image_properties(data, name, max_pixels=max_pixels)


def _failed(name: str, check: str, problem: str, fix: str) -> dict[str, Any]:
    """A row for a file that could not be read at all."""
    row: dict[str, Any] = dict.fromkeys(PROPERTY_COLUMNS)
    row.update(name=name, error=f"{name}: {problem}; {fix}", error_check=check)
    return row


def _rows(names: Sequence[str], read_bytes: ReadBytes, max_pixels: int) -> list[dict[str, Any]]:
    """The rows of one chunk (what a worker runs)."""
    return [property_row(name, read_bytes, max_pixels) for name in names]


def iter_properties(
    names: Iterable[str],
    read_bytes: ReadBytes,
    workers: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
    chunk: int = CHUNK,
    total: int | None = None,
    start_method: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Property rows of `names`, in their order, profiled by `workers` processes.

    Args:
        names: Manifest names (any iterable; consumed as the table advances).
        read_bytes: Reads one file by name. With `workers > 1` it must pickle (a module-level
            function, a `FolderReader`, a `functools.partial` of one); workers call it.
        workers: Worker processes; 1 profiles in this process.
        max_pixels: Most pixels a header may promise.
        progress: Called with (rows done, `total`) after each chunk.
        chunk: Images per worker task.
        total: Rows expected, for `progress` (by default `len(names)` when it has one, else 0).
        start_method: How workers start (`fork`, `forkserver`, `spawn`); by default the
            platform's (fork on Linux before Python 3.14: no start-up imports, which is most of
            the cost on small images; spawn and forkserver are the choice in a process that
            runs other threads).

    Yields:
        One row per name (`image_properties`, or `missing` for a file that is not there).

    Raises:
        TypeError: `workers > 1` and `read_bytes` cannot be pickled.
    """
    if total is None:
        total = len(names) if isinstance(names, Sized) else 0
    done = 0
    if workers <= 1:
        for name in names:
            yield property_row(name, read_bytes, max_pixels)
            done += 1
            if progress is not None and done % chunk == 0:
                progress(done, total)
        if progress is not None and done % chunk:
            progress(done, total)
        return
    try:
        pickle.dumps(read_bytes)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise TypeError(
            f"read_bytes {read_bytes!r} cannot be sent to worker processes ({error}); pass a "
            "module-level function or a FolderReader, or use workers=1"
        ) from None
    pending: deque[Future[list[dict[str, Any]]]] = deque()
    batches = _chunks(names, chunk)
    context = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for batch in batches:
            pending.append(pool.submit(_rows, batch, read_bytes, max_pixels))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                done = yield from _drain(pending.popleft(), done, total, progress)
        while pending:
            done = yield from _drain(pending.popleft(), done, total, progress)


def _drain(
    future: Future[list[dict[str, Any]]], done: int, total: int, progress: Progress | None
) -> Generator[dict[str, Any], None, int]:
    """Yield a finished chunk's rows and report progress; returns the new count done."""
    rows = future.result()
    yield from rows
    done += len(rows)
    if progress is not None:
        progress(done, total)
    return done


def _chunks(names: Iterable[str], size: int) -> Iterator[list[str]]:
    """`names` in lists of `size` (the last may be shorter)."""
    batch: list[str] = []
    for name in names:
        batch.append(name)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def property_table(
    names: Iterable[str],
    read_bytes: ReadBytes,
    workers: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
    start_method: str | None = None,
) -> list[dict[str, Any]]:
    """All property rows of `names`, in order (see `iter_properties`, which streams them)."""
    return list(iter_properties(names, read_bytes, workers, max_pixels, progress, start_method=start_method))
