"""The `dataset.image` section: how images are sized and normalised, and what the gate accepts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.common.config_section import Section

Severity = Literal["error", "warning"]
ImageFormat = Literal["png", "jpeg", "dicom"]


def _every_format() -> list[ImageFormat]:
    return ["png", "jpeg", "dicom"]


class ImageBounds(Section):
    """What the image gate accepts; a file outside these bounds fails (or warns) by name."""

    formats: list[ImageFormat] = Field(default_factory=_every_format)
    """Formats accepted, told by the file's magic bytes (not its extension)."""
    channels: list[Literal[1, 3, 4]] | None = None
    """Channel counts accepted (1 grey, 3 RGB, 4 RGBA). Default: any."""
    bit_depths: list[int] | None = None
    """Bits per sample accepted (8 and 16 for PNG and JPEG; DICOM's BitsStored, e.g. 12).
    Default: any."""
    min_width: int = Field(8, ge=1)
    """Narrowest image accepted, in pixels."""
    max_width: int = Field(20_000, ge=1)
    """Widest image accepted, in pixels."""
    min_height: int = Field(8, ge=1)
    """Lowest image accepted, in pixels."""
    max_height: int = Field(20_000, ge=1)
    """Tallest image accepted, in pixels."""
    max_pixels: int = Field(100_000_000, ge=1)
    """Largest width x height a header may promise; larger files are refused before decoding
    (decompression bombs), in the gate and at serving."""
    max_file_bytes: int = Field(256 * 2**20, ge=1)
    """Largest file accepted."""
    max_duplicate_fraction: float = Field(0.01, ge=0, lt=1)
    """Largest share of images that repeat an earlier one (the same bytes; with
    `near_duplicate_bits`, also a perceptual hash that close)."""
    near_duplicate_bits: int | None = Field(None, ge=0, le=32)
    """Count an image whose 64-bit pHash is at most this many bits from an earlier one's as a
    duplicate (8 catches the same picture resized, re-encoded or brightened). Off by default:
    on small or alike images unrelated pictures share hashes (measured: within 8 bits, 30% of
    the digits images and 59% of the synthetic mammograms)."""
    severity: Severity = "error"
    """Severity of the bounds checks (format, channels, bit depth, size, file bytes, duplicates)."""

    @model_validator(mode="after")
    def _depths(self) -> ImageBounds:
        if self.bit_depths is not None and any(not 1 <= b <= 16 for b in self.bit_depths):
            raise ValueError(f"dataset.image.bounds.bit_depths {self.bit_depths}: each must be 1 to 16")
        return self


class ImageNormalisation(Section):
    """Per-channel statistics the model's input is normalised with: (x - mean) / std, x in [0, 1]."""

    mean: list[float]
    """Per-channel mean of the [0, 1]-scaled pixels."""
    std: list[float] = Field(min_length=1)
    """Per-channel standard deviation (each > 0)."""

    @model_validator(mode="after")
    def _matching(self) -> ImageNormalisation:
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError("dataset.image.normalise needs as many means as stds, every std > 0")
        return self


class ImageAugmentation(Section):
    """Random changes to training images (torchvision.transforms.v2); none at evaluation or serving."""

    horizontal_flip: bool = False
    """Flip left-right with probability 0.5 (mammogram views are mirror images)."""
    vertical_flip: bool = False
    """Flip top-bottom with probability 0.5."""
    rotation_degrees: float = Field(0.0, ge=0, le=180)
    """Rotate by a uniform angle in [-degrees, degrees]."""
    resized_crop_scale: float | None = Field(None, gt=0, le=1)
    """Random resized crop: the smallest share of the image area a crop keeps (None: off)."""
    brightness: float = Field(0.0, ge=0, le=1)
    """Brightness jitter: a factor in [1 - b, 1 + b]."""
    contrast: float = Field(0.0, ge=0, le=1)
    """Contrast jitter: a factor in [1 - c, 1 + c]."""
    gamma: float = Field(0.0, ge=0, le=1)
    """Gamma jitter: x ** g with g in [1 - gamma, 1 + gamma] (device response curves differ)."""
    noise_std: float = Field(0.0, ge=0, le=1)
    """Standard deviation of added Gaussian noise, on the [0, 1] scale."""


class ImageSettings(Section):
    """Images (dataset.modality: images): the model's input size and how every image is fitted to it."""

    size: tuple[int, int] = (64, 64)
    """The model's input (height, width) in pixels."""
    channels: Literal[1, 3] = 1
    """The model's input channels: 1 (grey; colour images are converted) or 3 (RGB)."""
    fit: Literal["letterbox", "stretch", "center_crop"] = "letterbox"
    """How an image of another shape reaches `size`: letterbox keeps the aspect ratio and pads
    with black; stretch resizes each axis; center_crop scales the short side and crops."""
    normalise: Literal["fit"] | ImageNormalisation = "fit"
    """fit: per-channel mean and std of the training images; or given statistics."""
    augment: ImageAugmentation = Field(default_factory=ImageAugmentation)
    """Training-time augmentation."""
    bounds: ImageBounds = Field(default_factory=ImageBounds)
    """What the image gate accepts."""
    gpu_decode: bool = True
    """On a GPU, decode a training split of JPEG files there (nvJPEG), the DataLoader workers
    only reading the bytes: for nodes whose CPU cores cannot decode as fast as the GPU trains.
    PNG and DICOM, and every CPU run, decode in the workers."""
    workers: int = Field(2, ge=0, le=64)
    """Processes that decode images: the gate's property table and each rank's DataLoader
    (0: decode in the main process)."""

    @model_validator(mode="after")
    def _sane(self) -> ImageSettings:
        if min(self.size) < 4:
            raise ValueError(f"dataset.image.size {list(self.size)} must be at least 4 x 4 pixels")
        normalise = self.normalise
        if not isinstance(normalise, str) and len(normalise.mean) != self.channels:
            raise ValueError(
                f"dataset.image.normalise gives {len(normalise.mean)} channel(s) but channels is "
                f"{self.channels}"
            )
        return self
