"""Request logs: every served row, batched off the request path, as JSONL files in the store.

Layout: `logs/<model>/<predictor>/<window start, UTC %Y%m%dT%H%M>/<pid>-<token>-<seq>.jsonl`,
one JSON object per served row. Each file is written once, atomically, under a name no other
process or batch uses, so a reader (the monitor, the rollout analysis) never sees half a
batch and never sees a row twice. A background thread writes a batch when `flush_rows` rows
are waiting or every `flush_seconds`; on SIGTERM (a graceful shutdown) everything queued is
written at once, and rows served after that are written as they come.

Served files (a sample of the images a model answered, kept so that labels arriving later can
be joined to them for retraining) go through the same queue, ahead of the rows that name them:
`served/<model>/<UTC day %Y%m%d>/<sha256>.<extension>`, content-addressed, so an image served
twice is stored once. Days older than the retention are deleted by the writer thread.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from components.common.modalities.base import LOG_ENCODER
from components.common.store import Store

logger = logging.getLogger(__name__)


def window_start(time_iso: str, minutes: int) -> str:
    """The window a record belongs to, as a folder name (UTC, floored to `minutes`)."""
    moment = datetime.fromisoformat(time_iso)
    floored = int(moment.timestamp()) // (60 * minutes) * (60 * minutes)
    return datetime.fromtimestamp(floored, UTC).strftime("%Y%m%dT%H%M")


ENCODER = LOG_ENCODER
"""One encoder for every row (the codecs' too)."""


class RequestLog:
    """Queues served rows and writes them to the store in batches, from a background thread."""

    def __init__(
        self,
        store: Store,
        model: str,
        predictor: str,
        flush_rows: int = 1000,
        flush_seconds: float = 5.0,
        window_minutes: int = 60,
        flush_bytes: int = 32 * 2**20,
        retention_days: int | None = None,
    ) -> None:
        """Start the writer thread.

        Args:
            store: Where the log files go.
            model: Model name (a folder level).
            predictor: The Seldon predictor serving (main, canary, shadow...).
            flush_rows: Write as soon as this many rows wait.
            flush_seconds: Write at least this often while rows wait.
            window_minutes: Time window per folder.
            flush_bytes: Write as soon as this many bytes of served files wait.
            retention_days: Delete served files of days older than this (None: keep them).
        """
        self.store, self.model, self.predictor = store, model, predictor
        self.flush_rows, self.flush_seconds, self.window_minutes = flush_rows, flush_seconds, window_minutes
        self._queue: list[tuple[str, str]] = []  # (window folder, JSON line)
        self._files: dict[str, bytes] = {}  # served files by key, written before the rows
        self._file_bytes = 0
        self.flush_bytes, self.retention_days = flush_bytes, retention_days
        self._pruned_day = ""
        self._lock = threading.Lock()  # guards the queue and the closing flag
        self._write_lock = threading.Lock()  # one batch written at a time
        self._wake = threading.Event()
        self._closing = False
        self._sequence = itertools.count()
        self._token = uuid.uuid4().hex[:8]
        self.written_rows = 0
        self._last_window = ("", "")
        self._thread = threading.Thread(target=self._run, name="kubeloop-request-log", daemon=True)
        self._thread.start()

    def prefix(self) -> str:
        """Store prefix of this predictor's logs."""
        return f"logs/{self.model}/{self.predictor}"

    def log(self, records: Iterable[dict[str, Any]]) -> None:
        """Queue rows; returns at once (after a shutdown began, writes them before returning)."""
        # Encoded here, a few microseconds a row: encoding a whole batch later in the writer
        # thread held the GIL long enough to show in the server's p99 latency.
        self._enqueue([(self._window(r["time"]), ENCODER.encode(r) + "\n") for r in records])

    def log_lines(self, time_iso: str, lines: list[str]) -> None:
        """Queue rows already encoded (one JSON object and a newline each) that share one time."""
        window = self._window(time_iso)
        self._enqueue([(window, line) for line in lines])

    def log_file(self, key: str, data: bytes) -> None:
        """Queue a served file; it is written before the rows queued after it (which name it)."""
        with self._lock:
            if key not in self._files:
                self._files[key] = data
                self._file_bytes += len(data)
        self._enqueue([])

    def _enqueue(self, lines: list[tuple[str, str]]) -> None:
        with self._lock:
            self._queue.extend(lines)
            waiting, closing = len(self._queue), self._closing
            full = self._file_bytes >= self.flush_bytes
        if closing:
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the caller's response must not fail for its log line
                logger.exception("request log: writing during shutdown failed; rows stay queued")
        elif waiting >= self.flush_rows or full:
            self._wake.set()

    def flush(self) -> int:
        """Write everything queued now; returns the rows written. A failed write keeps its rows queued."""
        with self._write_lock:
            with self._lock:
                batch, self._queue = self._queue, []
                files, self._files, self._file_bytes = self._files, {}, 0
            self._write_files(files, batch)
            if not batch:
                return 0
            windows: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for entry in batch:
                windows[entry[0]].append(entry)
            written: list[str] = []
            try:
                for window, rows in sorted(windows.items()):
                    name = f"{os.getpid()}-{self._token}-{next(self._sequence):06d}.jsonl"
                    key = f"{self.prefix()}/{window}/{name}"
                    self.store.write_bytes(key, "".join(line for _, line in rows).encode())
                    written.append(window)
            except Exception:
                # Put back only the windows not written yet: a row must be neither lost nor doubled.
                unwritten = [r for w, rows in windows.items() if w not in written for r in rows]
                with self._lock:
                    self._queue[:0] = unwritten
                raise
            self.written_rows += len(batch)
            return len(batch)

    def _write_files(self, files: dict[str, bytes], batch: list[tuple[str, str]]) -> None:
        """Write queued files; on a failure, put back the unwritten ones and the rows (whose
        lines name the files) and raise."""
        for key in list(files):
            try:
                self.store.write_bytes(key, files[key])
            except Exception:
                with self._lock:
                    self._queue[:0] = batch
                    for pending, data in files.items():
                        if pending not in self._files:
                            self._files[pending] = data
                            self._file_bytes += len(data)
                raise
            del files[key]

    def prune(self, today: str) -> int:
        """Delete this model's served files of days older than the retention; returns how many.

        Args:
            today: The UTC day, %Y%m%d.
        """
        if self.retention_days is None:
            return 0
        cutoff = (datetime.strptime(today, "%Y%m%d") - timedelta(days=self.retention_days)).strftime("%Y%m%d")
        prefix = f"served/{self.model}/"
        old = [k for k in self.store.list(prefix) if k[len(prefix) :].split("/", 1)[0] < cutoff]
        for key in old:
            self.store.delete(key)
        return len(old)

    def _window(self, time_iso: str) -> str:
        """The window folder of a record's time (kept per minute: windows are whole minutes)."""
        minute = time_iso[:16]  # YYYY-MM-DDTHH:MM, UTC: one window for the whole minute
        cached = self._last_window
        if cached[0] != minute:
            cached = self._last_window = (minute, window_start(time_iso, self.window_minutes))
        return cached[1]

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            with self._lock:
                if self._closing:
                    return
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the store may be briefly away; the rows stay queued
                logger.exception("request log: writing a batch failed; retrying in %ss", self.flush_seconds)
            today = datetime.now(UTC).strftime("%Y%m%d")
            if self.retention_days is not None and today != self._pruned_day:
                try:
                    removed = self.prune(today)
                    self._pruned_day = today
                    logger.info("served files: %d older than %d days deleted", removed, self.retention_days)
                except Exception:  # noqa: BLE001 - tried again after the next batch
                    logger.exception("served files: deleting old days failed; trying again")

    def close(self) -> None:
        """Stop the thread and write what is queued; later `log` calls write synchronously."""
        with self._lock:
            self._closing = True
        self._wake.set()
        self.flush()

    def flush_on_sigterm(self) -> bool:
        """Chain a SIGTERM handler that closes the log before the server's own handler runs.

        Only the main thread can set handlers; returns False where that is not possible.
        """
        previous = signal.getsignal(signal.SIGTERM)

        def handler(signum: int, frame: Any) -> None:
            try:
                self.close()
            finally:
                if callable(previous):
                    previous(signum, frame)
                elif previous == signal.SIG_DFL:
                    raise SystemExit(128 + signum)

        try:
            signal.signal(signal.SIGTERM, handler)
        except ValueError:
            return False
        return True


_SECOND: tuple[int, str] = (-1, "")
"""The last whole second formatted (now_iso is on every request's path)."""


def now_iso() -> str:
    """UTC now with milliseconds, as datetime.isoformat(timespec="milliseconds") writes it."""
    global _SECOND
    now = time.time()
    second = int(now)
    cached = _SECOND
    if cached[0] != second:
        cached = _SECOND = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int((now - second) * 1000):03d}+00:00"
