"""The images modality: manifests, preparation, streamed batches, built-in CNNs and the codec."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

from components.common.artifacts import DatasetSchema
from components.common.config import DatasetConfig
from components.common.data import DataReadError
from components.common.image_config import ImageSettings
from components.common.modalities import INPUTS_FILE, BadInput, modality_for
from components.common.modalities.image_prep import (
    ImageInputs,
    fit_size,
    locate,
    prepare,
    scaled,
    to_channels,
)
from components.common.onnx_outputs import GraphOutputs
from components.common.scoring import onnx_logits
from components.common.store import LocalStore
from components.common.tasks import MulticlassTask
from components.common.training_config import TrainingConfig
from components.train.cnn import small_cnn, torchvision_model
from components.train.export import ExportError, check_parity, export_onnx, require_parity

CLASSES = ["a", "b", "c"]


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 grey PNGs of three shapes (two sizes), one class per pattern, and a manifest beside them."""
    folder = tmp_path_factory.mktemp("images")
    (folder / "files").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for index in range(30):
        label = CLASSES[index % 3]
        height, width = (40, 60) if index % 2 else (48, 48)
        image = rng.integers(0, 60, size=(height, width), dtype=np.uint8)
        if label == "b":
            image[: height // 2] += 150
        elif label == "c":
            image[:, : width // 2] += 150
        (folder / "files" / f"{index}.png").write_bytes(_png(image))
        rows.append({"image": f"files/{index}.png", "label": label, "scanner": "A" if index % 2 else "B"})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def _modality(**image: object):  # type: ignore[no-untyped-def]
    config = DatasetConfig(path="m.csv", label="label", modality="images", image=ImageSettings(**image))
    return config.make_modality()


SCHEMA = DatasetSchema(features=["image"], categorical=[], label="label", positive_value="a")


def _fitted(manifest: Path, **image: object):  # type: ignore[no-untyped-def]
    """(modality, manifest frame, fitted inputs) for these image settings."""
    modality = _modality(**image)
    frame = modality.read(manifest)
    return modality, frame, modality.fit_inputs(frame, SCHEMA, TrainingConfig())


def test_the_manifest_resolves_images_beside_it_and_names_a_missing_column(manifest: Path) -> None:
    frame = _modality().read(manifest, str(manifest))
    assert frame["image"].iloc[0] == str((manifest.parent / "files" / "0.png").resolve())
    assert locate("x/y.png", "s3://bucket/data/manifest.csv") == "s3://bucket/data/x/y.png"
    assert locate("/abs/y.png", "s3://bucket/m.csv") == "/abs/y.png"
    other = manifest.with_name("other.csv")
    pd.read_csv(manifest).rename(columns={"image": "path"}).to_csv(other, index=False)
    with pytest.raises(DataReadError, match="no column 'image'.*dataset.image_column"):
        _modality().read(other)


def test_scaling_channels_and_fitting_keep_the_pixels_where_they_belong() -> None:
    assert scaled(np.array([[0, 65535]], dtype=np.uint16)).tolist() == [[0.0, 1.0]]
    rgb = np.random.default_rng(1).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    grey = to_channels(scaled(rgb), 1)[0]
    pillow = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    assert np.abs(grey - pillow).max() < 1 / 255 + 1e-6  # Pillow rounds to 8 bits
    wide = np.ones((1, 20, 40), dtype=np.float32)
    letterboxed = fit_size(wide, (32, 32), "letterbox")
    assert letterboxed.shape == (1, 32, 32)
    assert (
        letterboxed[0, 16, :].min() == pytest.approx(1.0) and letterboxed[0, 0, :].max() == 0.0
    )  # padded rows
    assert fit_size(wide, (32, 32), "stretch").min() == pytest.approx(1.0)
    ramp = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (20, 1))[None]
    cropped = fit_size(ramp, (20, 20), "center_crop")
    assert cropped.shape == (1, 20, 20) and 0.2 < cropped.min() and cropped.max() < 0.8  # the middle kept
    # A grey image for an RGB model: its one plane fitted and repeated, the pixels of three fitted copies.
    inputs = ImageInputs(size=(32, 32), channels=3, fit="letterbox", mean=[0.0] * 3, std=[1.0] * 3)
    for grey_pixels in (rgb[:, :, 0], rgb[:, :, :1], (rgb[:, :, 0].astype(np.uint16) * 257)):
        three = fit_size(to_channels(scaled(grey_pixels), 3), (32, 32), "letterbox")
        np.testing.assert_array_equal(prepare(grey_pixels, inputs), three)


def test_inputs_fit_statistics_on_train_and_arrays_stack_prepared_images(manifest: Path) -> None:
    modality, frame, inputs = _fitted(manifest, size=(32, 32))
    arrays = modality.arrays(inputs, frame)
    assert arrays.shape == (30, 1, 32, 32) and arrays.dtype == np.float32
    assert inputs.to_dict()["mean"][0] == pytest.approx(float(arrays.mean()), abs=1e-5)
    again = modality.load_inputs(inputs.to_dict())
    np.testing.assert_array_equal(modality.arrays(again, frame.head(3)), arrays[:3])
    assert modality.baseline_arrays(inputs, frame.head(4)).shape == (4, 256)


def test_streamed_batches_cover_the_split_once_per_epoch_with_workers(manifest: Path) -> None:
    modality, frame, inputs = _fitted(manifest, size=(24, 24), workers=2)
    targets = np.arange(30, dtype=np.int64)  # the row number: which rows arrived
    data = modality.training_batches(
        inputs, (frame, frame.head(10)), (targets, targets[:10]), TrainingConfig()
    )
    data.to(torch.device("cpu"), seed=3)
    seen = [t for _, y in data.epoch(1, 8) for t in y.tolist()]
    assert sorted(seen) == list(range(30)) and data.rows_per_rank() == 30
    again = [t for _, y in data.epoch(1, 8) for t in y.tolist()]
    other = [t for _, y in data.epoch(2, 8) for t in y.tolist()]
    assert again == seen and other != seen  # the same epoch shuffles alike; the next one differs
    ((images, rows),) = list(data.whole("validation"))
    assert images.shape == (10, 1, 24, 24) and rows.tolist() == list(range(10))
    np.testing.assert_allclose(images.numpy(), modality.arrays(inputs, frame.head(10)), atol=0)


def test_augmentation_depends_on_the_seed_the_epoch_and_the_row_alone(manifest: Path) -> None:
    """What resuming relies on: a second epoch read by fresh workers equals the second epoch of
    workers that read the first, whatever the worker count, and reading leaves the global
    generator (the model's dropout) alone."""
    augment = {"horizontal_flip": True, "gamma": 0.3, "noise_std": 0.05}
    targets = np.arange(30, dtype=np.int64)

    def batches(workers: int, seed: int = 3):  # type: ignore[no-untyped-def]
        modality, frame, inputs = _fitted(manifest, size=(24, 24), workers=workers, augment=augment)
        data = modality.training_batches(
            inputs, (frame, frame.head(10)), (targets, targets[:10]), TrainingConfig()
        )
        data.to(torch.device("cpu"), seed=seed)
        return data, modality.arrays(inputs, frame)

    def read(data, epoch: int) -> tuple[list[int], torch.Tensor]:  # type: ignore[no-untyped-def]
        pairs = list(data.epoch(epoch, 8))
        return [t for _, y in pairs for t in y.tolist()], torch.cat([x for x, _ in pairs])

    went_on, plain = batches(workers=2)
    read(went_on, 1)
    rows, second = read(went_on, 2)
    resumed, _ = batches(workers=0)
    before = torch.get_rng_state()
    again_rows, again = read(resumed, 2)
    list(resumed.whole("validation"))
    assert torch.equal(torch.get_rng_state(), before)
    assert again_rows == rows and torch.equal(again, second)
    assert not np.allclose(second.numpy(), plain[rows], atol=1e-3)  # the images were augmented
    third_rows, third = read(resumed, 3)
    by_row = {r: i for i, r in enumerate(third_rows)}
    assert not torch.equal(third[[by_row[r] for r in rows]], second)  # each epoch draws anew
    other_rows, other = read(batches(workers=0, seed=4)[0], 2)
    assert not torch.equal(other[[other_rows.index(r) for r in rows]], second)  # and each seed


def test_the_small_cnn_learns_and_exports_with_parity(manifest: Path, tmp_path: Path) -> None:
    from tests.specs import fit

    modality, frame, inputs = _fitted(manifest, size=(24, 24), workers=0)
    task = MulticlassTask("label", None, CLASSES)
    spec = modality.model_spec(inputs, task)
    assert spec.input_shape == [1, 24, 24] and spec.n_outputs == 3
    x = modality.arrays(inputs, frame)
    y = task.loss_targets(task.frame_targets(frame))
    cfg = TrainingConfig(
        epochs=25, batch_size=10, learning_rate=0.01, device="cpu", early_stopping_patience=30
    )
    model, history = fit(cfg, x, y, x, y, spec, task=task, log=lambda _: None)
    assert history[-1]["val_loss"] < 0.5 * history[0]["val_loss"]
    assert (model(torch.from_numpy(x)).argmax(1).numpy() == y).mean() > 0.9
    model.eval()
    path = tmp_path / "cnn.onnx"
    outputs = export_onnx(model, modality.example_input(spec), path, modality.input_name)
    assert outputs == GraphOutputs(("logit", "embedding"), 128)  # max and mean of 64 channels
    assert outputs == GraphOutputs.of_onnx(path.read_bytes())
    parity = check_parity(model, path, x, task, modality.input_name)  # x: decoded from the files
    assert parity.probability <= 1.0 and parity.embedding is not None and parity.embedding <= 1.0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logit, embedding = session.run(["logit", "embedding"], {"image": x})
    with torch.no_grad():
        torch_logit, torch_embedding = model.forward_with_embedding(torch.from_numpy(x))
    assert logit.shape == (30, 3) and embedding.shape == (30, 128)
    np.testing.assert_allclose(embedding, torch_embedding.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(logit, torch_logit.numpy(), rtol=1e-3, atol=1e-4)

    # What calibrate and evaluate run: the logits by name, an embedding (128 wide, not a multiple
    # of the 3 classes) beside them changing nothing.
    store = LocalStore(tmp_path / "store")
    store.write_bytes("m/model.onnx", path.read_bytes())
    store.write_json(f"m/{INPUTS_FILE}", inputs.to_dict())
    np.testing.assert_allclose(onnx_logits(store, "m", frame, task, modality), logit, rtol=1e-6)

    graph = onnx.load(str(path))  # a graph whose weights were altered after the export
    weights = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    altered = numpy_helper.to_array(weights) + 0.05
    weights.CopyFrom(numpy_helper.from_array(altered.astype(np.float32), weights.name))
    onnx.save(graph, str(path))
    with pytest.raises(ExportError, match="differs from torch by"):
        require_parity(check_parity(model, path, x, task, modality.input_name), path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # a truncated file
    with pytest.raises(ExportError, match="cannot be loaded by onnxruntime.*truncated or corrupt"):
        check_parity(model, path, x, task, modality.input_name)


def test_a_torchvision_model_exports_its_penultimate_features_with_parity(
    manifest: Path, tmp_path: Path
) -> None:
    modality, frame, inputs = _fitted(manifest, size=(32, 32), workers=0)
    task = MulticlassTask("label", None, CLASSES)
    spec = modality.model_spec(inputs, task)
    torch.manual_seed(0)
    model = torchvision_model(spec, "resnet18").eval()
    assert "network.fc.weight" in model.state_dict()  # torchvision's names, for warm starts
    x = modality.arrays(inputs, frame)
    path = tmp_path / "resnet.onnx"
    outputs = export_onnx(model, modality.example_input(spec), path, modality.input_name)
    assert outputs == GraphOutputs(("logit", "embedding"), 512)
    parity = check_parity(model, path, x, task, modality.input_name)
    assert parity.gap <= 1.0 and parity.embedding is not None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logit, embedding = session.run(None, {"image": x})
    assert logit.shape == (30, 3) and embedding.shape == (30, 512)
    with torch.no_grad():  # the embedding is what the classifier's last layer reads
        pooled = torch.flatten(model.network.avgpool(_resnet_trunk(model, torch.from_numpy(x))), 1)
        np.testing.assert_allclose(embedding, pooled.numpy(), rtol=1e-3, atol=1e-4)
        expected = pooled @ model.network.fc.weight.T + model.network.fc.bias
    np.testing.assert_allclose(logit, expected.numpy(), rtol=1e-3, atol=1e-4)


def _resnet_trunk(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    net = model.network
    out = net.maxpool(net.relu(net.bn1(net.conv1((images - model.mean) / model.std))))
    return net.layer4(net.layer3(net.layer2(net.layer1(out))))


def test_torchvision_models_take_the_spec_s_channels_and_outputs(manifest: Path) -> None:
    modality, frame, inputs = _fitted(manifest, size=(32, 32))
    spec = modality.model_spec(inputs, MulticlassTask("label", None, CLASSES))
    for name, width in (("resnet18", 512), ("mobilenet_v3_small", 1024), ("efficientnet_b0", 1280)):
        model = torchvision_model(spec, name).eval()
        logit, embedding = model.forward_with_embedding(torch.rand(2, 1, 32, 32))
        assert tuple(logit.shape) == (2, 3) and tuple(embedding.shape) == (2, width)
    with pytest.raises(ValueError, match="not one of"):
        torchvision_model(spec, "vgg11")
    with pytest.raises(ValueError, match="halve the size"):
        small_cnn(spec, widths=[8, 8, 8, 8, 8, 8])


def test_the_codec_serves_files_and_pixels_as_training_prepared_them(manifest: Path) -> None:
    modality, frame, inputs = _fitted(manifest, size=(32, 32))
    codec = modality.codec(inputs, SCHEMA)
    files = [Path(p).read_bytes() for p in frame["image"].head(3)]
    batch = codec.decode({"images": [base64.b64encode(f).decode() for f in files]}, None, 10)
    np.testing.assert_array_equal(codec.feed(batch)["image"], modality.arrays(inputs, frame.head(3)))
    assert '"image_sha256"' in codec.log_members(batch)[0]
    pixels = np.asarray(Image.open(io.BytesIO(files[0])))
    np.testing.assert_allclose(
        codec.feed(codec.decode(pixels.tolist(), None, 10))["image"][0], prepare(pixels, inputs)
    )
    with pytest.raises(BadInput, match="not base64"):
        codec.decode({"images": ["%%%"]}, None, 10)
    with pytest.raises(BadInput, match="image 0"):
        codec.decode({"images": [base64.b64encode(b"not an image at all").decode()]}, None, 10)
    with pytest.raises(BadInput, match="limit is 2"):
        codec.decode({"images": [base64.b64encode(files[0]).decode()] * 3}, None, 2)
    assert codec.feed(codec.example())["image"].shape == (1, 1, 32, 32)
    warm = codec.decode(codec.example_payload(4), None, 10)  # what a fresh server scores first
    mid_grey = np.repeat(codec.feed(codec.example())["image"], 4, 0)  # 0.5; the PNG's 128/255
    np.testing.assert_allclose(codec.feed(warm)["image"], mid_grey, atol=1 / 255)


def test_served_properties_are_the_gates_and_the_bounds_are_the_trainings(tmp_path: Path) -> None:
    """Serving measures a file as the gate does (grey, 16-bit, colour with Pillow's luma, 12-bit
    DICOM), holds it to the bounds the version was trained under, and the bounds round-trip."""
    from components.common.image_config import ImageBounds
    from components.common.modalities.image_io import grey_of
    from components.common.modalities.image_prep import ImageInputs, ServedBounds
    from components.common.modalities.image_properties import image_properties
    from components.common.modalities.image_served import read_served
    from components.common.modalities.images import served_bounds
    from examples.image_sets import write_dicom

    rng = np.random.default_rng(4)
    rgb = (rng.random((30, 41, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(grey_of(rgb), np.asarray(Image.fromarray(rgb).convert("L")))
    write_dicom(tmp_path / "c.dcm", (rng.random((40, 36)) * 4095).astype(np.uint16), {"BitsStored": 12})
    files = {"grey.png": (rng.random((33, 47)) * 255).astype(np.uint8), "deep.png": None, "rgb.png": rgb}
    files["deep.png"] = (rng.random((25, 52)) * 65535).astype(np.uint16)
    datas = {}
    for name, pixels in files.items():
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        datas[name] = buffer.getvalue()
    datas["c.dcm"] = (tmp_path / "c.dcm").read_bytes()
    inputs = ImageInputs((16, 16), 1, "letterbox", [0.5], [0.2])
    for name, data in datas.items():
        served, gate = read_served(data, name, inputs).properties, image_properties(data, name)
        for key in ("width", "height", "channels", "bit_depth", "file_bytes", "sha256", "format"):
            assert served[f"image_{key}"] == gate[key], (name, key)
        for key in ("mean", "std", "rms_contrast", "sharpness"):
            assert served[f"image_{key}"] == pytest.approx(gate[key], rel=1e-12), (name, key)

    bounds = served_bounds(ImageBounds(channels=[1], bit_depths=[8, 12], min_width=30, max_file_bytes=10**6))
    assert ServedBounds.from_dict(json.loads(json.dumps(bounds.to_dict()))) == bounds
    strict = ImageInputs((16, 16), 1, "letterbox", [0.5], [0.2], bounds=bounds)
    assert ImageInputs.from_dict(json.loads(json.dumps(strict.to_dict()))) == strict
    older = {**strict.to_dict(), "bounds": None}  # a version saved before serving checked bounds
    assert ImageInputs.from_dict(older).bounds == ServedBounds()
    read_served(datas["grey.png"], "ok", strict)
    refusals = {"rgb.png": "3 channel(s)", "deep.png": "16-bit samples"}
    for name, phrase in refusals.items():
        with pytest.raises(BadInput, match=re.escape(phrase)):
            read_served(datas[name], name, strict)
    small = ImageInputs((16, 16), 1, "letterbox", [0.5], [0.2], bounds=ServedBounds(max_file_bytes=900))
    with pytest.raises(BadInput, match="more than the 900 this model accepts"):
        read_served(datas["grey.png"], "big", small)


def test_image_settings_are_recorded_and_come_back_from_the_schema() -> None:
    config = DatasetConfig(
        path="m.csv", label="label", modality="images", image_column="path", image={"size": [20, 30]}
    )
    schema = DatasetSchema(
        features=["path"],
        categorical=[],
        label="label",
        positive_value=1,
        modality="images",
        modality_settings=config.modality_settings(),
    )
    again = DatasetSchema.from_json(__import__("json").dumps(schema.to_dict()))
    modality = again.make_modality()
    assert modality.name == "images" and modality.image_column == "path"  # type: ignore[attr-defined]
    assert modality.settings.size == (20, 30)  # type: ignore[attr-defined]
    assert modality_for("tabular").name == "tabular"
    with pytest.raises(ValueError, match="normalise gives 3 channel"):
        ImageSettings(channels=1, normalise={"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]})


def test_duplicates_are_exact_by_default_and_near_when_asked(manifest: Path, tmp_path: Path) -> None:
    from components.common.modalities.image_gate import duplicates

    base = np.random.default_rng(5).integers(0, 200, size=(48, 48), dtype=np.uint8)
    files = {
        "a.png": _png(base),
        "copy.png": _png(base),  # the same bytes
        "bright.png": _png(np.clip(base.astype(int) + 3, 0, 255).astype(np.uint8)),  # the same picture
        "other.png": _png(np.random.default_rng(6).integers(0, 200, size=(48, 48), dtype=np.uint8)),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    frame = pd.DataFrame({"image": [str(tmp_path / n) for n in files], "label": ["a", "b", "c", "a"]})
    table = _modality(workers=0).gate_table(frame)
    assert table["image_duplicate"].tolist() == [False, True, False, False]  # exact only
    near = duplicates(table["image_sha256"], table["image_phash"], near_bits=8)
    assert near.tolist() == [False, True, True, False]  # the first of a kind is never a duplicate
    rule = _modality(bounds={"max_duplicate_fraction": 0.2}).gate_rules()["image_duplicate"]
    assert rule.allowed == [False] and rule.allowed_share == pytest.approx(0.8)
