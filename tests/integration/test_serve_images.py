"""Images through a real seldon-core-microservice (and the local gateway in front of it): every
request form, the answers evaluation would give, the request log, and bad images refused with a
4xx while the worker lives (a decompression bomb refused before it is decoded)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from components.common.modalities.image_prep import load
from components.common.modalities.image_properties import image_properties
from components.common.onnx_outputs import decode_embedding
from components.deploy.gateway import Gateway, Route, serve
from components.deploy.seldondeployment import Predictor, render_seldondeployment
from examples.image_sets import write_dicom
from tests.conftest import free_port
from tests.serving import logged_rows, microservice, post, registered_image_version

pytestmark = pytest.mark.integration

MAX_ROWS = 8
MAX_REQUEST_BYTES = 4 * 2**20
BOMB_SIDE = 20_000


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def grey(seed: int, height: int = 48, width: int = 40, dtype: Any = np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    return (np.random.default_rng(seed).random((height, width)) * top).astype(dtype)


def bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A real decompression bomb: a valid grey PNG of side x side black pixels (400 MB decoded at
    20,000), a few hundred KB on the wire."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    data = b"".join(packer.compress(row * 500) for _ in range(side // 500)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def dicom(tmp: Path, name: str, pixels: np.ndarray, bits: int) -> bytes:
    path = tmp / name
    write_dicom(path, pixels, {"BitsStored": bits, "Manufacturer": "Scanner C"})
    return path.read_bytes()


def children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def peak_kib(pid: int) -> int:
    """The process's peak resident memory (VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("serve-images")
    version = registered_image_version(folder / "models" / "1")
    store = folder / "store"
    options = {
        "log_uri": str(store),
        "predictor": "main",
        "flush_seconds": 0.3,
        "max_rows": MAX_ROWS,
        "max_request_bytes": MAX_REQUEST_BYTES,
        "metrics_port": 0,
        "sample_share": 1.0,  # every served file kept for retraining
    }
    with microservice(folder / "models" / "1", folder, **options) as running:
        yield {**version, **running, "store": store, "folder": folder, "model_dir": folder / "models" / "1"}


def evaluated(model_dir: Path, files: list[Path], inputs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(probability, embedding) of each file as the evaluate step scores it: prepared by
    `image_prep.load`, run through the version's serving graph."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = np.stack([load(str(path), inputs) for path in files])
    probability, embedding = session.run(["probability", "embedding"], {"image": batch})
    return probability.reshape(-1), embedding


def test_every_request_form_gets_the_answer_evaluation_gives(served: dict[str, Any], tmp_path: Path) -> None:
    files = {"a.png": png(grey(1)), "b.png": png(grey(2, 64, 64, np.uint16)), "c.dcm": b""}
    files["c.dcm"] = dicom(tmp_path, "c.dcm", grey(3, 56, 44, np.uint16) >> 4, bits=12)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    expected, embeddings = evaluated(served["model_dir"], [tmp_path / n for n in files], served["inputs"])
    base = served["base"]

    status, reply = post(base, {"jsonData": {"images": [b64(d) for d in files.values()]}})
    assert status == 200, reply
    predictions = reply["jsonData"]["predictions"]
    np.testing.assert_allclose([p["probability"] for p in predictions], expected, atol=1e-6)
    assert [p["decision"] for p in predictions] == [int(p >= 0.5) for p in expected]
    assert all("embedding" not in p for p in predictions)  # only when asked
    assert reply["meta"]["tags"]["model_name"] == "screening-images"

    first = files["a.png"]
    singles = {
        "binData": {"binData": b64(first)},
        "strData": {"strData": b64(first)},
        "jsonData.image": {"jsonData": {"image": b64(first)}},
    }
    for form, body in singles.items():
        status, reply = post(base, body)
        assert status == 200, (form, reply)
        answer = reply["jsonData"]["predictions"][0]
        assert answer["probability"] == pytest.approx(expected[0], abs=1e-6), form

    pixels = np.asarray(Image.open(io.BytesIO(first))).tolist()
    status, reply = post(base, {"data": {"ndarray": pixels}})
    assert status == 200, reply
    assert reply["data"]["names"] == ["probability", "decision"]
    assert reply["data"]["ndarray"][0][0] == pytest.approx(expected[0], abs=1e-6)

    status, reply = post(base, {"jsonData": {"images": [b64(first), b64(files["c.dcm"])], "embedding": True}})
    assert status == 200, reply
    got = np.array([p["embedding"] for p in reply["jsonData"]["predictions"]])
    assert got.shape == (2, served["embedding_dim"])
    np.testing.assert_allclose(got, embeddings[[0, 2]], atol=1e-4)


def rows_of(store: Path, request_id: str, count: int = 1, seconds: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(rows) < count:
        rows = [r for r in logged_rows(store) if r["request_id"] == request_id]
        time.sleep(0.2)
    assert len(rows) == count, f"{request_id}: {len(rows)} of {count} rows logged within {seconds} s"
    return sorted(rows, key=lambda r: r["row"])


def test_the_request_log_keeps_the_gates_properties_and_the_embedding(served: dict[str, Any]) -> None:
    data = png(grey(7, 36, 60))
    body = {"jsonData": {"images": [b64(data)], "embedding": True}, "meta": {"puid": "log-probe"}}
    status, reply = post(served["base"], body)
    assert status == 200, reply
    rows = rows_of(served["store"], "log-probe")
    row, gate = rows[0], image_properties(data, "probe.png")
    for name in ("width", "height", "file_bytes", "bit_depth", "channels", "format", "sha256"):
        assert row["features"][f"image_{name}"] == gate[name], name
    for name in ("mean", "std", "rms_contrast", "sharpness"):
        assert row["features"][f"image_{name}"] == pytest.approx(gate[name], rel=1e-9), name
    [answer] = reply["jsonData"]["predictions"]
    logged = decode_embedding(row["embedding"])  # float32, base64: compact and cheap to write
    assert logged.shape == (served["embedding_dim"],)
    np.testing.assert_allclose(logged, answer["embedding"], atol=1e-6)
    assert row["probability"] == pytest.approx(answer["probability"])
    assert "pixels" not in json.dumps(row)


def test_served_files_are_kept_under_their_hash_for_retraining(
    served: dict[str, Any], tmp_path: Path
) -> None:
    """With sample_share 1 every file is kept, once per content, and its log row names it, so
    a label that arrives for (request id, row) finds the image it labels."""
    files = [
        png(grey(30)),
        dicom(tmp_path, "k.dcm", grey(31, 48, 48, np.uint16) >> 4, bits=12),
        png(grey(30)),
    ]
    body = {"jsonData": {"images": [b64(f) for f in files]}, "meta": {"puid": "keep"}}
    assert post(served["base"], body)[0] == 200
    assert (
        post(served["base"], {"data": {"ndarray": grey(32).tolist()}, "meta": {"puid": "pixels"}})[0] == 200
    )
    rows = rows_of(served["store"], "keep", count=3)
    for row, data in zip(rows, files, strict=True):
        key = row["stored"]
        assert key.startswith("served/screening-images/") and key.endswith(
            ".dcm" if data[:4] != b"\x89PNG" else ".png"
        )
        assert (served["store"] / key).read_bytes() == data
    assert rows[0]["stored"] == rows[2]["stored"]  # the same image, stored once
    assert "stored" not in rows_of(served["store"], "pixels")[0]  # pixel arrays have no file


def test_a_graceful_shutdown_writes_every_queued_file_and_row(tmp_path: Path) -> None:
    version = registered_image_version(tmp_path / "models" / "2")
    store = tmp_path / "store"
    # Nothing is written on its own for an hour: only the SIGTERM flush can write these.
    options = {"log_uri": str(store), "flush_rows": 100_000, "flush_seconds": 3600.0, "sample_share": 1.0}
    files = [png(grey(40 + i)) for i in range(6)]
    with microservice(tmp_path / "models" / "2", tmp_path, metrics_port=0, **options) as running:
        for index, data in enumerate(files):
            assert post(running["base"], {"binData": b64(data), "meta": {"puid": f"t-{index}"}})[0] == 200
        assert logged_rows(store) == [] and not (store / "served").exists()
        os.kill(running["process"].pid, signal.SIGTERM)  # as Kubernetes does: to the main process only
        deadline = time.monotonic() + 45
        while len(logged_rows(store)) < len(files) and time.monotonic() < deadline:
            time.sleep(0.2)
        rows = logged_rows(store)
    assert sorted(r["request_id"] for r in rows) == [f"t-{i}" for i in range(len(files))]
    assert sorted((store / r["stored"]).read_bytes() for r in rows) == sorted(files)
    assert all(decode_embedding(r["embedding"]).shape == (version["embedding_dim"],) for r in rows)


def bad_requests(tmp: Path) -> dict[str, tuple[Any, int, str]]:
    """name -> (request body, status, a phrase the message must hold)."""
    good = png(grey(11))
    rgb = (np.random.default_rng(5).random((40, 40, 3)) * 255).astype(np.uint8)
    bmp = io.BytesIO()
    Image.fromarray(grey(12)).save(bmp, format="BMP")
    one_bit = png(grey(13) > 128, "1")
    cut_dicom = dicom(tmp, "cut.dcm", grey(14, 64, 64, np.uint16) >> 4, bits=12)
    huge = b"\x89PNG" + bytes(MAX_REQUEST_BYTES)
    return {
        "not an image": (
            {"jsonData": {"images": [b64(b"patient 12, left view")]}},
            400,
            "not a PNG, JPEG or DICOM",
        ),
        "empty file": ({"binData": ""}, 400, "empty"),
        "truncated PNG": ({"jsonData": {"images": [b64(good[: len(good) // 2])]}}, 400, "image 0"),
        "truncated DICOM": ({"strData": b64(cut_dicom[:-2000])}, 400, "pixel data"),
        "unsupported format": ({"binData": b64(bmp.getvalue())}, 400, "BMP"),
        "wrong channels (RGB file)": ({"jsonData": {"images": [b64(png(rgb))]}}, 400, "3 channel(s)"),
        "wrong channels (RGB pixels)": ({"data": {"ndarray": rgb.tolist()}}, 400, "3 channel(s)"),
        "wrong bit depth": ({"jsonData": {"images": [b64(one_bit)]}}, 400, "1-bit samples"),
        "too small": ({"jsonData": {"images": [b64(png(grey(15, 8, 8)))]}}, 400, "width 8"),
        "decompression bomb": ({"binData": b64(bomb_png())}, 400, "20000 x 20000"),
        "not base64": ({"jsonData": {"images": ["%%%not-base64"]}}, 400, "not base64"),
        "too many images": ({"jsonData": {"images": [b64(good)] * (MAX_ROWS + 1)}}, 400, "9 images"),
        "payload over the limit": ({"binData": b64(huge)}, 413, "max_request_bytes"),
        "no image": ({"jsonData": {"images": []}}, 400, "holds no image"),
    }


def test_bad_images_get_a_4xx_naming_the_problem_and_the_worker_lives(
    served: dict[str, Any], tmp_path: Path
) -> None:
    base, pid = served["base"], served["process"].pid
    workers = descendants(pid)
    assert workers, "the microservice has no worker processes"
    good = {"jsonData": {"images": [b64(png(grey(20)))]}}
    failures = []
    for name, (body, status, phrase) in bad_requests(tmp_path).items():
        got, reply = post(base, body)
        info = json.dumps(reply)
        if got != status or phrase not in info:
            failures.append(f"{name}: {got} {info[:300]}")
        after, _ = post(base, good)
        if after != 200:
            failures.append(f"{name}: the next good request got {after}")
    assert not failures, "\n".join(failures)
    assert descendants(pid) == workers, "a worker died and was replaced"


def test_a_decompression_bomb_is_refused_before_decoding(served: dict[str, Any]) -> None:
    base, pid = served["base"], served["process"].pid
    for seed in range(5):  # warm: every code path of a good image has run
        assert post(base, {"binData": b64(png(grey(seed)))})[0] == 200
    processes = descendants(pid) | {pid}
    before = {p: peak_kib(p) for p in processes}
    bomb = bomb_png()
    assert len(bomb) < MAX_REQUEST_BYTES // 2
    status, reply = post(base, {"binData": b64(bomb)})
    assert status == 400 and "400,000,000 pixels" in json.dumps(reply), reply
    grown = {p: peak_kib(p) - before[p] for p in processes}
    assert max(grown.values()) <= 50 * 1024, f"peak memory grew by {max(grown.values())} KiB"


@contextlib.contextmanager
def gateway_to(base: str) -> Iterator[str]:
    name = "screening-images"
    sdep = render_seldondeployment(name, "kubeloop", name, [Predictor("main", "1")])
    gateway = Gateway(Route.from_deployment(sdep, {"main": base}))
    server = serve(gateway, free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        gateway.close()


def test_through_the_gateway_images_are_answered_and_bad_ones_refused(served: dict[str, Any]) -> None:
    checks: list[tuple[Any, Callable[[int, dict[str, Any]], bool]]] = [
        (
            {"jsonData": {"images": [b64(png(grey(s))) for s in range(4)]}},
            lambda status, reply: status == 200 and len(reply["jsonData"]["predictions"]) == 4,
        ),
        ({"binData": b64(bomb_png())}, lambda status, reply: status == 400),
        ({"binData": b64(bytes(MAX_REQUEST_BYTES))}, lambda status, reply: status == 413),
    ]
    with gateway_to(served["base"]) as base:
        for body, ok in checks:
            status, reply = post(base, body)
            assert ok(status, reply), (status, json.dumps(reply)[:300])
