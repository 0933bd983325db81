"""Image reading and the per-image property table: every format written by real libraries,
properties against an independent computation, each bad input, bombs refused undecoded,
duplicates, and the parallel table."""

from __future__ import annotations

import io
import pickle
import struct
import subprocess
import sys
import time
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import scipy.fft
import scipy.ndimage
from PIL import Image, ImageFile
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, SecondaryCaptureImageStorage, generate_uid

from components.common.modalities.image_io import ImageError, decode, read_header, sniff_format
from components.common.modalities.image_properties import (
    NEAR_DUPLICATE_BITS,
    PROPERTY_COLUMNS,
    hamming,
    image_properties,
)
from components.common.modalities.image_table import FolderReader, iter_properties, property_table

REPO = Path(__file__).resolve().parents[2]


def scene(seed: int, height: int = 96, width: int = 128) -> np.ndarray:
    """A smooth synthetic picture (gradient and blobs, a little noise), uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    img = 0.3 * (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1))
    for _ in range(6):
        cy, cx, r = rng.uniform(0, 1, 3)
        img += rng.uniform(-1, 1) * np.exp(
            -((y - cy * height / max(height, width)) ** 2 + (x - cx) ** 2) / (0.02 + 0.05 * r)
        )
    img = (img - img.min()) / (img.max() - img.min())
    return (20 + 200 * img + rng.normal(0, 3, img.shape)).clip(0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **options)
    return out.getvalue()


def dicom(
    array: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    **fields: object,
) -> bytes:
    """An uncompressed single-frame DICOM file written by pydicom."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("mg.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.Manufacturer, ds.PixelSpacing = "MG", "ACME Imaging", [0.07, 0.085]
    ds.Rows, ds.Columns = array.shape[:2]
    ds.SamplesPerPixel = 3 if array.ndim == 3 else 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if array.dtype == np.uint8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
    if array.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PixelData = array.astype(array.dtype.newbyteorder("<")).tobytes()
    for key, value in fields.items():
        setattr(ds, key, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR promises width x height 8-bit grey pixels (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 header is patched to promise width x height."""
    data = bytearray(encode(scene(0, 16, 16), "JPEG"))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def pillow_luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma exactly as Pillow's convert('L') rounds it."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def reference_phash(grey: np.ndarray) -> str:
    """imagehash's pHash recipe (scipy DCT of the 32 x 32 area-averaged image, median threshold)."""
    small = np.asarray(Image.fromarray(grey).resize((32, 32), Image.Resampling.BOX), dtype=np.float64)
    low = scipy.fft.dct(scipy.fft.dct(small, axis=0), axis=1)[:8, :8]
    bits = "".join("1" if v else "0" for v in (low > np.median(low)).ravel())
    return f"{int(bits, 2):016x}"


def assert_statistics(row: dict, grey: np.ndarray, full: int) -> None:
    g = grey.astype(np.float64) / full
    assert row["mean"] == pytest.approx(g.mean(), abs=1e-12)
    assert row["std"] == pytest.approx(g.std(), abs=1e-9)
    assert row["rms_contrast"] == pytest.approx(g.std() / g.mean(), rel=1e-9)
    assert row["sharpness"] == pytest.approx(scipy.ndimage.laplace(g)[1:-1, 1:-1].var(), rel=1e-9, abs=1e-15)
    assert row["phash"] == reference_phash(grey)
    assert row["error"] is None and row["error_check"] is None


GREY = scene(1)
RGB = np.stack([scene(2), scene(3), scene(4)], axis=-1)
DEEP = (scene(5).astype(np.uint16) * 250 + np.arange(128, dtype=np.uint16)).astype(np.uint16)


@pytest.mark.parametrize(
    ("name", "data", "mode", "channels", "bits", "truth", "full"),
    [
        ("grey.png", encode(GREY), "L", 1, 8, GREY, 255),
        ("rgb.png", encode(RGB), "RGB", 3, 8, RGB, 255),
        ("deep.png", encode(DEEP), "I;16", 1, 16, DEEP, 65535),
        ("mg.dcm", dicom(DEEP >> 4), "I;16", 1, 12, DEEP >> 4, 4095),
    ],
)
def test_lossless_formats_read_as_written_and_profile_as_numpy_computes(
    name: str, data: bytes, mode: str, channels: int, bits: int, truth: np.ndarray, full: int
) -> None:
    pixels = decode(data, name)
    assert pixels.dtype == truth.dtype and np.array_equal(pixels, truth)
    row = image_properties(data, name)
    assert list(row) == list(PROPERTY_COLUMNS)
    assert (row["mode"], row["channels"], row["bit_depth"]) == (mode, channels, bits)
    assert (row["width"], row["height"], row["file_bytes"]) == (128, 96, len(data))
    assert row["extension_matches"] is True
    assert_statistics(row, pillow_luma(truth) if truth.ndim == 3 else truth, full)


@pytest.mark.parametrize("array", [GREY, RGB], ids=["grey", "rgb"])
def test_jpeg_profiles_as_pillow_decodes_it(array: np.ndarray) -> None:
    data = encode(array, "JPEG", quality=90)
    assert sniff_format(data) == "jpeg"
    reference = Image.open(io.BytesIO(data))
    row = image_properties(data, "x.jpeg")
    assert (row["format"], row["mode"], row["channels"], row["bit_depth"]) == (
        "jpeg",
        reference.mode,
        array.ndim * 2 - 3,
        8,
    )
    assert_statistics(row, np.asarray(reference.convert("L")), 255)


def test_16_bit_png_keeps_its_depth_and_matches_its_8_bit_version() -> None:
    pixels = decode(encode(DEEP), "deep.png")
    assert pixels.dtype == np.uint16 and pixels.max() > 255
    deep = image_properties(encode(DEEP), "deep.png")
    shallow = image_properties(encode((DEEP >> 8).astype(np.uint8)), "shallow.png")
    assert deep["mean"] == pytest.approx(shallow["mean"], abs=0.01)
    assert hamming(deep["phash"], shallow["phash"]) <= NEAR_DUPLICATE_BITS


def test_dicom_metadata_columns_and_its_header_without_pixels() -> None:
    data = dicom(DEEP >> 4, RescaleSlope=2, RescaleIntercept=-100)
    row = image_properties(data, "study/IM0001")
    assert (row["format"], row["extension"], row["extension_matches"]) == ("dicom", "", True)
    assert (row["manufacturer"], row["rows"], row["columns"]) == ("ACME Imaging", 96, 128)
    assert (row["pixel_spacing"], row["pixel_spacing_column"]) == (0.07, 0.085)
    assert image_properties(data, "1.2.840.113619.2.55.320")["extension_matches"] is True, "named by its UID"
    assert image_properties(data, "mg.png")["error_check"] == "format_mismatch"
    assert np.array_equal(decode(data, "mg.dcm"), DEEP >> 4), "stored values: rescale is not applied"
    header = read_header(data[: len(data) // 2], "cut.dcm")
    assert (header.width, header.height, header.bit_depth) == (128, 96, 12)
    with pytest.raises(ImageError) as cut:
        decode(data[: len(data) // 2], "cut.dcm")
    assert cut.value.check == "truncated"


def test_monochrome1_is_inverted_and_rgb_dicom_reads() -> None:
    inverted = decode(dicom(DEEP >> 4, photometric="MONOCHROME1"), "m1.dcm")
    assert np.array_equal(inverted, 4095 - (DEEP >> 4))
    data = dicom(RGB, photometric="RGB", bits_stored=8)
    assert np.array_equal(decode(data, "rgb.dcm"), RGB)
    assert_statistics(image_properties(data, "rgb.dcm"), pillow_luma(RGB), 255)


def test_a_compressed_dicom_without_a_decoder_is_unsupported() -> None:
    ds = pydicom.dcmread(io.BytesIO(dicom(DEEP >> 4)))
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 32])
    out = io.BytesIO()
    ds.save_as(out)
    row = image_properties(out.getvalue(), "j2k.dcm")
    assert row["error_check"] == "unsupported" and "uncompressed" in row["error"]


JPEG = encode(GREY, "JPEG")
PNG = encode(GREY)


BAD = [
    ("zero.png", b"", "empty"),
    ("half.png", PNG[: len(PNG) // 2], "truncated"),
    ("no-iend.png", PNG[:-12], "truncated"),
    ("header-cut.png", PNG[:30], "truncated"),
    ("half.jpg", JPEG[: len(JPEG) // 2], "truncated"),
    ("no-eoi.jpg", JPEG[:-2], "truncated"),
    ("notes.png", b"patient list\nnot an image\n" * 10, "unreadable"),
    ("scan.tif", b"II*\x00" + b"\0" * 200, "unsupported"),
    ("half.dcm", dicom(DEEP >> 4)[:-500], "truncated"),
    ("bomb.png", png_header_only(60000, 60000), "too_many_pixels"),
]


@pytest.mark.parametrize(("name", "data", "check"), BAD, ids=[name for name, _, _ in BAD])
def test_each_bad_file_is_refused_with_its_check(name: str, data: bytes, check: str) -> None:
    with pytest.raises(ImageError) as refused:
        decode(data, name)
    assert refused.value.check == check and str(refused.value).startswith(name + ": ")
    row = image_properties(data, name)
    assert (row["error_check"], row["file_bytes"], row["mean"]) == (check, len(data), None)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_a_jpeg_named_png_is_a_format_mismatch_with_its_properties() -> None:
    row = image_properties(JPEG, "scan.png")
    assert (row["format"], row["extension_matches"], row["error_check"]) == ("jpeg", False, "format_mismatch")
    assert row["mean"] is not None and ".jpg" in row["error"]
    assert image_properties(JPEG, "scan.PNG", extension="jpg")["error_check"] is None


@pytest.mark.parametrize(
    "data", [png_header_only(60000, 60000), jpeg_claiming(60000, 60000)], ids=["png", "jpeg"]
)
def test_a_decompression_bomb_is_refused_from_its_header_without_allocating(data: bytes) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    row = image_properties(data, "bomb")
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert row["error_check"] == "too_many_pixels" and (row["width"], row["height"]) == (60000, 60000)
    assert "3,600,000,000 pixels" in row["error"]
    assert seconds < 0.5 and peak < 1_000_000, (seconds, peak)


def test_our_limit_is_the_guard_not_pillows() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail here
        with pytest.raises(ImageError) as refused:
            read_header(png_header_only(12000, 12000), "big.png", max_pixels=1_000_000)
        assert refused.value.check == "too_many_pixels"
        header = read_header(png_header_only(60000, 60000), "slide.png", max_pixels=10**10)
    assert (header.width, header.height) == (60000, 60000), "Pillow's own limit must not refuse it"


def test_exact_and_near_duplicates() -> None:
    base = scene(7)
    first, copy = image_properties(encode(base), "a.png"), image_properties(encode(base), "b/a-copy.png")
    assert first["sha256"] == copy["sha256"] and first["phash"] == copy["phash"]
    variants = {
        "resized": encode(np.asarray(Image.fromarray(base).resize((102, 77), Image.Resampling.LANCZOS))),
        "jpeg": encode(base, "JPEG", quality=80),
        "brighter": encode((base.astype(np.int16) + 2).clip(0, 255).astype(np.uint8)),
    }
    for kind, data in variants.items():
        row = image_properties(data, kind)
        assert row["sha256"] != first["sha256"]
        assert hamming(row["phash"], first["phash"]) <= NEAR_DUPLICATE_BITS, kind
    others = [image_properties(encode(scene(seed)), "o.png")["phash"] for seed in range(20, 30)]
    assert min(hamming(first["phash"], other) for other in others) > 2 * NEAR_DUPLICATE_BITS


def test_hamming() -> None:
    assert hamming("0" * 16, "f" * 16) == 64 and hamming("8000000000000001", "0000000000000001") == 1


def test_tiny_images_have_zero_sharpness() -> None:
    for shape in [(1, 1), (2, 7), (7, 2)]:
        row = image_properties(encode(np.full(shape, 9, np.uint8)), "tiny.png")
        assert row["sharpness"] == 0.0 and row["std"] == 0.0 and row["error"] is None


def write_folder(root: Path) -> list[str]:
    names = []
    for i in range(70):
        kind = i % 7
        name = f"dev{i % 2}/img{i:03d}" + (".dcm" if kind == 3 else ".jpg" if kind == 5 else ".png")
        array = scene(i, 64 + 8 * (i % 3), 80)
        data = {3: dicom(array.astype(np.uint16) * 16), 5: encode(array, "JPEG")}.get(kind, encode(array))
        if kind == 6:
            data = data[: len(data) // 3]
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        names.append(name)
    return names[:35] + ["dev0/not-there.png"] + names[35:]


def test_the_parallel_table_equals_the_serial_one_in_order_and_a_missing_file_is_a_row(
    tmp_path: Path,
) -> None:
    names = write_folder(tmp_path)
    reader = FolderReader(tmp_path)
    seen: list[tuple[int, int]] = []
    serial = property_table(names, reader, workers=1)
    parallel = list(
        iter_properties(names, reader, workers=2, progress=lambda d, t: seen.append((d, t)), chunk=4)
    )
    assert [r["name"] for r in parallel] == names
    assert parallel == serial
    missing = serial[35]
    assert (missing["error_check"], missing["format"]) == ("missing", None) and "not-there" in missing[
        "error"
    ]
    assert sum(r["error_check"] == "truncated" for r in serial) == 10
    assert {r["format"] for r in serial} == {"png", "jpeg", "dicom", None}
    assert seen[-1] == (len(names), len(names)) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_workers_need_a_picklable_reader(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="FolderReader"):
        property_table(["a.png"], lambda name: b"", workers=2)
    assert pickle.loads(pickle.dumps(FolderReader(tmp_path))).root == tmp_path


def test_reading_imports_neither_pydicom_nor_torch_until_a_dicom_file_comes() -> None:
    code = (
        "import sys; from components.common.modalities import image_table, image_properties;"
        "print('pydicom' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_palette_and_1_bit_pngs_expand_and_profile_as_their_grey() -> None:
    palette = Image.fromarray(GREY).convert("P")
    out = io.BytesIO()
    palette.save(out, "PNG", transparency=0)
    row = image_properties(out.getvalue(), "palette.png")
    assert (row["mode"], row["channels"]) == ("P", 4) and decode(out.getvalue(), "palette.png").shape == (
        96,
        128,
        4,
    )
    assert_statistics(row, np.asarray(palette.convert("L")), 255)
    mask = GREY > 120
    pixels = decode(encode(mask), "mask.png")
    assert pixels.dtype == np.uint8 and set(np.unique(pixels)) == {0, 255}
    assert image_properties(encode(mask), "mask.png")["bit_depth"] == 1
