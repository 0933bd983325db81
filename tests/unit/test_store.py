"""The artifact store contract, run against the folder backend and a real S3 server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cli.main import main
from components.common.store import (
    ConflictError,
    LocalStore,
    NotFoundError,
    Store,
    StoreAccessError,
    open_store,
)
from components.deploy.local_serving import free_port


def test_round_trip_bytes_json_text(store: Store) -> None:
    store.write_bytes("runs/r1/train/model.bin", b"\x00\x01weights")
    store.write_json("runs/r1/train/metrics.json", {"recall": 0.9})
    store.write_text("runs/r1/validate_data/report.md", "# ok ✓")
    assert store.read_bytes("runs/r1/train/model.bin") == b"\x00\x01weights"
    assert store.read_json("runs/r1/train/metrics.json") == {"recall": 0.9}
    assert store.read_text("runs/r1/validate_data/report.md") == "# ok ✓"


def test_missing_key_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.read_bytes("runs/none/x.json")
    assert not store.exists("runs/none/x.json")


def test_overwrite_replaces_whole_object(store: Store) -> None:
    store.write_bytes("a/b.txt", b"x" * 1000)
    store.write_bytes("a/b.txt", b"short")
    assert store.read_bytes("a/b.txt") == b"short"


def test_list_is_recursive_sorted_and_prefix_exact(store: Store) -> None:
    for key in ("runs/r1/a.json", "runs/r1/sub/b.json", "runs/r10/c.json", "models/m/1/x"):
        store.write_bytes(key, b"1")
    assert store.list("runs/r1") == ["runs/r1/a.json", "runs/r1/sub/b.json"]
    assert store.list("runs") == ["runs/r1/a.json", "runs/r1/sub/b.json", "runs/r10/c.json"]
    assert store.list("nothing") == []


def test_delete(store: Store) -> None:
    store.write_bytes("d/x", b"1")
    store.delete("d/x")
    assert not store.exists("d/x")


def test_files_in_and_out(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"payload" * 1000)
    store.upload_file("f/in.bin", source)
    out = store.download_file("f/in.bin", tmp_path / "out" / "copy.bin")
    assert out.read_bytes() == source.read_bytes()
    with store.local_copy("f/in.bin") as path:
        assert path.read_bytes() == source.read_bytes()


def test_staged_uploads_only_when_the_block_succeeds(store: Store) -> None:
    with store.staged("s/ok.txt") as path:
        path.write_text("done")
    assert store.read_text("s/ok.txt") == "done"
    with pytest.raises(RuntimeError), store.staged("s/crash.txt") as path:
        path.write_text("half")
        raise RuntimeError("step crashed")
    assert not store.exists("s/crash.txt")


def test_write_if_is_compare_and_swap(store: Store) -> None:
    first = store.write_if("cas/x.json", b"1", None)
    with pytest.raises(ConflictError):
        store.write_if("cas/x.json", b"other", None)  # must not exist yet
    data, version = store.read_versioned("cas/x.json")
    assert data == b"1" and version == first
    second = store.write_if("cas/x.json", b"2", version)
    with pytest.raises(ConflictError):
        store.write_if("cas/x.json", b"stale", version)  # version is no longer current
    assert store.read_versioned("cas/x.json") == (b"2", second)


def test_concurrent_cas_increments_lose_nothing(store: Store) -> None:
    store.write_bytes("cas/counter", b"0")

    def bump(times: int) -> None:
        for _ in range(times):
            while True:
                data, version = store.read_versioned("cas/counter")
                try:
                    store.write_if("cas/counter", str(int(data) + 1).encode(), version)
                    break
                except ConflictError:
                    continue

    threads = [threading.Thread(target=bump, args=(15,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert store.read_bytes("cas/counter") == b"60"


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_bad_keys_are_rejected(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="invalid store key"):
        store.write_bytes(key, b"x")


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for i in range(5):
        store.write_json("runs/r/x.json", {"i": i})
    names = [p.name for p in (tmp_path / "runs" / "r").iterdir()]
    assert names == ["x.json"]


def test_open_store_picks_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path / "s")), LocalStore)
    with pytest.raises(ValueError, match="unsupported store URI"):
        open_store("gs://bucket/x")


def test_s3_without_credentials_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID"):
        open_store("s3://bucket/prefix")


def test_wrong_s3_keys_or_endpoint_say_what_to_check(
    s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The real server checks each request's signature: a wrong secret is refused on the first one.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StoreAccessError, match=r"refused the request \(\w+.*AWS_SECRET_ACCESS_KEY"):
        open_store("s3://kubeloop-test/keys")
    assert main(["models", "--store", "s3://kubeloop-test/keys"]) == 2  # a usage error, no traceback
    said = capsys.readouterr().err
    assert said.startswith("error: store s3://kubeloop-test/keys: the S3 server at")
    assert "Traceback" not in said and "not-the-secret" not in said
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_env["AWS_SECRET_ACCESS_KEY"])
    monkeypatch.setenv("KUBELOOP_S3_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens
    with pytest.raises(StoreAccessError, match="cannot reach the S3 server.*KUBELOOP_S3_ENDPOINT"):
        open_store("s3://kubeloop-test/keys")


def test_s3_repr_never_shows_credentials(s3_env: dict[str, str]) -> None:
    store = open_store("s3://kubeloop-test/repr")
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in repr(store)
    assert s3_env["AWS_ACCESS_KEY_ID"] not in repr(store)


def test_a_keys_location_opens_outside_the_store(store: Store) -> None:
    """What a manifest names a kept file by: a path, or an s3:// URI the image reader opens."""
    from components.common.modalities.image_prep import read_location

    store.write_bytes("served/m/20260101/abc.png", b"\x89PNG...")
    location = store.location("served/m/20260101/abc.png")
    assert location.endswith("/served/m/20260101/abc.png") and location.startswith(store.uri)
    assert read_location(location) == b"\x89PNG..."
    with pytest.raises(ValueError):
        store.location("../outside")
