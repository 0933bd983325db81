"""One image from its location to the model's input: read, decode, scale, fit the size.

Training (in DataLoader workers), evaluation and serving all call `prepare`, so a model sees
the same pixels everywhere. Normalisation ((x - mean) / std) happens inside the model (the
built-in networks fold the fitted statistics into their graph), as the tabular MLP
standardises its inputs. numpy and Pillow only; the store is imported when an s3:// image is read.
"""

from __future__ import annotations

import functools
import posixpath
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from components.common.modalities.image_io import ImageHeader, decode_with_header

GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
"""ITU-R 601-2 luma, as Pillow's convert("L") weighs red, green and blue."""


@dataclass(frozen=True)
class ServedBounds:
    """What serving accepts of a request's image file: the gate's bounds (`dataset.image.bounds`)
    the version was trained under, so traffic is held to what training saw."""

    formats: tuple[str, ...] = ("png", "jpeg", "dicom")
    channels: tuple[int, ...] | None = None
    """Channel counts of the file (1 grey, 3 RGB, 4 RGBA); None: any."""
    bit_depths: tuple[int, ...] | None = None
    """Bits per sample of the file (DICOM's BitsStored); None: any."""
    min_width: int = 1
    max_width: int = 1 << 30
    min_height: int = 1
    max_height: int = 1 << 30
    max_file_bytes: int = 256 * 2**20

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServedBounds:
        """Inverse of to_dict (a missing field keeps its default)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("formats", "channels", "bit_depths"):
            if known.get(key) is not None:
                known[key] = tuple(known[key])
        return cls(**known)


@dataclass(frozen=True)
class ImageInputs:
    """The input spec saved with an image model (preprocessing.json)."""

    size: tuple[int, int]
    """The model's input (height, width)."""
    channels: int
    """1 (grey) or 3 (RGB)."""
    fit: str
    """letterbox, stretch or center_crop."""
    mean: list[float]
    """Per-channel mean of the [0, 1]-scaled training pixels (the model subtracts it)."""
    std: list[float]
    """Per-channel standard deviation (the model divides by it)."""
    image_column: str = "image"
    """The manifest column with each image's location."""
    max_pixels: int = 100_000_000
    """Largest width x height a header may promise; larger images are refused undecoded."""
    bounds: ServedBounds = ServedBounds()
    """What a served file must be (a version saved before serving checked bounds: anything)."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        data = asdict(self)
        data["size"] = list(self.size)
        data["bounds"] = self.bounds.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageInputs:
        """Inverse of to_dict."""
        return cls(
            size=(int(data["size"][0]), int(data["size"][1])),
            channels=int(data["channels"]),
            fit=str(data["fit"]),
            mean=[float(v) for v in data["mean"]],
            std=[float(v) for v in data["std"]],
            image_column=str(data.get("image_column", "image")),
            max_pixels=int(data.get("max_pixels", 100_000_000)),
            bounds=ServedBounds.from_dict(dict(data.get("bounds") or {})),
        )


def locate(value: str, manifest: str) -> str:
    """An image's location: as written when absolute (a path or s3://), else beside the manifest."""
    if value.startswith("s3://") or Path(value).is_absolute():
        return value
    if manifest.startswith("s3://"):
        parts = urlsplit(manifest)
        folder = posixpath.dirname(parts.path)
        return f"s3://{parts.netloc}{posixpath.normpath(posixpath.join(folder, value))}"
    return str((Path(manifest).resolve().parent / value).resolve())


@functools.lru_cache(maxsize=8)
def _bucket(uri: str) -> Any:
    """One S3 client per bucket and process (DataLoader workers each build their own)."""
    from components.common.s3store import S3Store

    return S3Store.from_uri(uri)


def read_location(location: str) -> bytes:
    """The bytes of an image file: a local path or s3://bucket/key.

    Raises:
        FileNotFoundError: No file at `location`.
    """
    if location.startswith("s3://"):
        parts = urlsplit(location)
        store = _bucket(f"s3://{parts.netloc}")
        key = parts.path.lstrip("/")
        if not store.exists(key):
            raise FileNotFoundError(location)
        return bytes(store.read_bytes(key))
    return Path(location).read_bytes()


def scaled(pixels: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1]: by the bit depth of integer images, clipped otherwise."""
    if pixels.dtype in (np.uint8, np.uint16):  # one array, divided in place (the same values)
        out = pixels.astype(np.float32)
        out /= 255.0 if pixels.dtype == np.uint8 else 65535.0
        return out
    if np.issubdtype(pixels.dtype, np.integer):
        info = np.iinfo(pixels.dtype)
        return (pixels.astype(np.float32) - info.min) / float(info.max - info.min)
    return np.clip(pixels.astype(np.float32), 0.0, 1.0)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, C) in [0, 1] -> (channels, H, W): colour to luma for grey, grey repeated for RGB."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 4:  # RGBA: the alpha channel carries no anatomy
        image = image[:, :, :3]
    if channels == 1 and image.shape[2] == 3:
        image = (image @ GREY_WEIGHTS)[:, :, None]
    elif channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


def _resize(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """One float plane resized with Pillow's bilinear filter (antialiased when shrinking)."""
    from PIL import Image

    if plane.shape == (height, width):
        return plane
    source = np.ascontiguousarray(plane, dtype=np.float32)
    image = Image.frombuffer("F", (source.shape[1], source.shape[0]), source, "raw", "F", 0, 1)
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def fit_size(image: np.ndarray, size: tuple[int, int], how: str) -> np.ndarray:
    """(C, H, W) -> (C, size[0], size[1]).

    letterbox: scale to fit inside, keep the aspect ratio, pad with 0 (black) around;
    stretch: scale each axis; center_crop: scale the short side to fit, crop the middle.
    """
    height, width = size
    _, h, w = image.shape
    if how == "stretch":
        return np.stack([_resize(p, height, width) for p in image])
    scale = min(height / h, width / w) if how == "letterbox" else max(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if how == "letterbox":
        out = np.zeros((image.shape[0], height, width), dtype=np.float32)
        top, left = (height - new_h) // 2, (width - new_w) // 2
        for channel, plane in enumerate(image):  # each resized plane straight into its place
            out[channel, top : top + new_h, left : left + new_w] = _resize(plane, new_h, new_w)
        return out
    planes = np.stack([_resize(p, new_h, new_w) for p in image])
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(planes[:, top : top + height, left : left + width])


def decode_scaled(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """A file's pixels as float32 in [0, 1], by the file's full scale: DICOM's
    `2**BitsStored - 1` (12-bit mammograms span [0, 1] as 8- and 16-bit images do; by the
    uint16 type they would sit in [0, 1/16]), else the array type's (255, 65535). The gate's
    intensity statistics use the same scale.

    Raises:
        ImageError: The file cannot be used (see `image_io.decode`).
    """
    return scale_stored(*decode_with_header(data, name, max_pixels))


def scale_stored(header: ImageHeader, stored: np.ndarray) -> np.ndarray:
    """Stored pixels as float32 in [0, 1] (see `decode_scaled`)."""
    if header.format == "dicom":
        return np.clip(stored.astype(np.float32) / float(2**header.bit_depth - 1), 0.0, 1.0)
    return scaled(stored)


def prepare(pixels: np.ndarray, inputs: ImageInputs) -> np.ndarray:
    """Decoded pixels -> the model's input (C, H, W) float32 in [0, 1], before normalisation."""
    return fit_input(scaled(pixels), inputs)


def fit_input(image: np.ndarray, inputs: ImageInputs) -> np.ndarray:
    """`prepare` of pixels already scaled to float32 in [0, 1] (`scale_stored`'s), without
    scaling them again."""
    if inputs.channels == 3 and (image.ndim == 2 or image.shape[2] == 1):
        # Grey for an RGB model: fit the one plane, then repeat it (the same pixels as fitting
        # three copies, for a third of the resizing).
        return np.repeat(fit_size(to_channels(image, 1), inputs.size, inputs.fit), 3, axis=0)
    return fit_size(to_channels(image, inputs.channels), inputs.size, inputs.fit)


def thumbnail(location: str, side: int, max_pixels: int) -> bytes | None:
    """The image at `location` as an 8-bit PNG at most side x side, its intensities stretched
    between the 1st and 99th percentile (16-bit and DICOM images look flat otherwise); None when
    the file cannot be read or decoded."""
    try:
        data = read_location(location)
    except OSError:
        return None
    return thumbnail_of(data, location, side, max_pixels)


def thumbnail_of(data: bytes, name: str, side: int, max_pixels: int) -> bytes | None:
    """`thumbnail` of a file's bytes (a served image kept in the store)."""
    import io

    from PIL import Image

    from components.common.modalities.image_io import ImageError

    try:
        pixels = decode_scaled(data, name, max_pixels)
    except ImageError:
        return None
    low, high = np.percentile(pixels, [1, 99])
    if high - low > 1e-3:
        pixels = np.clip((pixels - low) / float(high - low), 0.0, 1.0)
    # else a flat image: shown at its own intensity (stretching would make any one black)
    image = Image.fromarray((pixels * 255).astype(np.uint8).squeeze())
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def load(location: str, inputs: ImageInputs) -> np.ndarray:
    """Read, decode (refusing a header that promises too many pixels) and prepare one image."""
    return fit_input(decode_scaled(read_location(location), location, inputs.max_pixels), inputs)
