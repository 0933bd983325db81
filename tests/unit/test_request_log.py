"""The request log: batches off the request path, every row once, nothing lost on failure or close."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from components.common.store import LocalStore
from components.deploy.request_log import RequestLog, window_start


def rows_in(store_root: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for p in sorted(store_root.rglob("*.jsonl")) for line in p.read_text().splitlines()
    ]


def record(request: str, row: int = 0, time_iso: str = "2026-11-23T10:17:03.120+00:00") -> dict[str, Any]:
    return {"request_id": request, "row": row, "time": time_iso}


def test_windows_floor_to_the_configured_minutes() -> None:
    assert window_start("2026-11-23T10:17:03.120+00:00", 60) == "20261123T1000"
    assert window_start("2026-11-23T10:17:03.120+00:00", 15) == "20261123T1015"


def test_a_full_batch_is_written_by_the_thread_and_split_by_window(tmp_path: Path) -> None:
    log = RequestLog(LocalStore(tmp_path), "screening", "main", flush_rows=4, flush_seconds=60)
    log.log([record("a", i) for i in range(3)] + [record("b", 0, "2026-11-23T11:00:00.000+00:00")])
    deadline = time.monotonic() + 10
    while len(rows_in(tmp_path)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    folders = sorted(p.parent.name for p in tmp_path.rglob("*.jsonl"))
    assert folders == ["20261123T1000", "20261123T1100"]
    assert all(p.parent.parent.name == "main" for p in tmp_path.rglob("*.jsonl"))
    log.close()


def test_concurrent_callers_lose_and_double_nothing(tmp_path: Path) -> None:
    log = RequestLog(LocalStore(tmp_path), "screening", "main", flush_rows=7, flush_seconds=0.01)

    def caller(name: str) -> None:
        for i in range(200):
            log.log([record(f"{name}-{i}", 0), record(f"{name}-{i}", 1)])

    threads = [threading.Thread(target=caller, args=(f"t{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    keys = [(r["request_id"], r["row"]) for r in rows_in(tmp_path)]
    assert len(keys) == len(set(keys)) == 4 * 200 * 2


class FlakyStore(LocalStore):
    """Fails the first `failures` writes, as a store that is briefly away."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    def write_bytes(self, key: str, data: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store unavailable")
        super().write_bytes(key, data)


def test_a_failed_write_keeps_its_rows_for_the_next_flush(tmp_path: Path) -> None:
    log = RequestLog(
        FlakyStore(tmp_path, failures=1), "screening", "main", flush_rows=10**6, flush_seconds=3600
    )
    log.log([record("a", i) for i in range(5)])
    try:
        log.flush()
    except ConnectionError:
        pass
    assert rows_in(tmp_path) == []
    log.log([record("b")])
    assert log.flush() == 6
    assert sorted((r["request_id"], r["row"]) for r in rows_in(tmp_path)) == [("a", i) for i in range(5)] + [
        ("b", 0)
    ]


def test_after_close_rows_are_written_as_they_come(tmp_path: Path) -> None:
    log = RequestLog(LocalStore(tmp_path), "screening", "main", flush_rows=10**6, flush_seconds=3600)
    log.log([record("early")])
    log.close()
    assert [r["request_id"] for r in rows_in(tmp_path)] == ["early"]
    log.log([record("late")])  # a request still in flight when the shutdown began
    assert sorted(r["request_id"] for r in rows_in(tmp_path)) == ["early", "late"]


def test_now_iso_is_isoformat_with_milliseconds_in_utc() -> None:
    import re
    from datetime import UTC, datetime

    from components.deploy.request_log import now_iso

    for _ in range(3):
        before = datetime.now(UTC)
        stamp = now_iso()
        after = datetime.now(UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", stamp), stamp
        parsed = datetime.fromisoformat(stamp)
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= parsed <= after


def test_served_files_are_written_before_the_rows_that_name_them_and_survive_a_failure(
    tmp_path: Path,
) -> None:
    """A row names the file it was served from: the file reaches the store first, a failed
    write keeps both for the next flush, an image queued twice is written once, and a full
    enough queue of bytes wakes the writer."""
    store = FlakyStore(tmp_path, failures=1)
    log = RequestLog(store, "screening", "main", flush_rows=10**6, flush_seconds=3600, flush_bytes=10**9)
    log.log_file("served/screening/20261123/aa.png", b"first")
    log.log([{**record("a"), "stored": "served/screening/20261123/aa.png"}])
    try:
        log.flush()
    except ConnectionError:
        pass
    assert rows_in(tmp_path) == [] and not (tmp_path / "served").exists()
    log.log_file("served/screening/20261123/aa.png", b"first")  # the same image again
    assert log.flush() == 1
    assert (tmp_path / "served/screening/20261123/aa.png").read_bytes() == b"first"
    assert [r["stored"] for r in rows_in(tmp_path)] == ["served/screening/20261123/aa.png"]

    eager = RequestLog(
        LocalStore(tmp_path), "screening", "main", flush_rows=10**6, flush_seconds=3600, flush_bytes=8
    )
    eager.log_file("served/screening/20261123/bb.png", b"0123456789")
    deadline = time.monotonic() + 10
    while not (tmp_path / "served/screening/20261123/bb.png").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "served/screening/20261123/bb.png").exists()
    eager.close()


def test_served_files_of_days_past_the_retention_are_deleted(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for day in ("20261101", "20261115", "20261116", "20261123"):
        store.write_bytes(f"served/screening/{day}/x.png", b"x")
    store.write_bytes("served/other/20261101/x.png", b"x")
    kept = RequestLog(store, "screening", "main", flush_seconds=3600)
    assert kept.prune("20261123") == 0  # no retention: kept for ever
    log = RequestLog(store, "screening", "main", flush_seconds=3600, retention_days=7)
    assert log.prune("20261123") == 2
    assert sorted(store.list("served/")) == [
        "served/other/20261101/x.png",
        "served/screening/20261116/x.png",
        "served/screening/20261123/x.png",
    ]
    kept.close()
    log.close()
