"""What one frame's stored pixels look like (Image Pixel module), checked once per instance.

Decoding needs these attributes to tell raw bytes from a codestream by length, to choose the
stored dtype, and to sign-extend or mask. Only greyscale is supported for now: colour and
bit-packed images raise `UnsupportedPixels` with a message a user can act on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

GREYSCALE = ("MONOCHROME1", "MONOCHROME2")


class UnsupportedPixels(ValueError):
    """Valid DICOM, but not something this extension decodes (colour, 1-bit, float pixels...)."""


def _int(ds: Any, keyword: str, default: Any = None) -> int:
    value = getattr(ds, keyword, None) if hasattr(ds, keyword) else None
    if value is None or value == "":
        if default is None:
            raise ValueError(f"the image has no {keyword}: it cannot be decoded")
        return int(default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{keyword} is not an integer: {value!r}") from None


@dataclass(frozen=True)
class PixelDescription:
    """Stored pixel layout of every frame of an instance (PS3.3 C.7.6.3)."""

    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    high_bit: int
    pixel_representation: int
    samples_per_pixel: int = 1
    photometric_interpretation: str = "MONOCHROME2"
    planar_configuration: int = 0

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def from_dataset(cls, ds: Any) -> "PixelDescription":
        """From a pydicom Dataset (a file, or series metadata); ValueError names what is wrong."""
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedPixels("float pixel data (parametric maps) is not supported yet")
        bits_allocated = _int(ds, "BitsAllocated")
        bits_stored = _int(ds, "BitsStored", bits_allocated)
        return cls(
            rows=_int(ds, "Rows"),
            columns=_int(ds, "Columns"),
            bits_allocated=bits_allocated,
            bits_stored=bits_stored,
            high_bit=_int(ds, "HighBit", bits_stored - 1),
            pixel_representation=_int(ds, "PixelRepresentation", 0),
            samples_per_pixel=_int(ds, "SamplesPerPixel", 1),
            photometric_interpretation=str(getattr(ds, "PhotometricInterpretation", "") or "").strip().upper(),
            planar_configuration=_int(ds, "PlanarConfiguration", 0),
        )

    def check(self) -> None:
        """ValueError for impossible values; UnsupportedPixels for valid layouts not decoded here."""
        for keyword, value in (("Rows", self.rows), ("Columns", self.columns)):
            if value <= 0:
                raise ValueError(f"{keyword} must be positive, not {value}")
        if self.pixel_representation not in (0, 1):
            raise ValueError(f"PixelRepresentation must be 0 or 1, not {self.pixel_representation}")
        if self.samples_per_pixel != 1 or self.photometric_interpretation not in GREYSCALE:
            raise UnsupportedPixels(
                f"colour images are not supported yet (SamplesPerPixel {self.samples_per_pixel}, "
                f"PhotometricInterpretation {self.photometric_interpretation or 'missing'})")
        if self.bits_allocated not in (8, 16, 32):
            raise UnsupportedPixels(f"BitsAllocated {self.bits_allocated} is not supported (8, 16 or 32)")
        if not 1 <= self.bits_stored <= self.bits_allocated:
            raise ValueError(f"BitsStored {self.bits_stored} does not fit BitsAllocated {self.bits_allocated}")
        if self.high_bit != self.bits_stored - 1:
            raise UnsupportedPixels(f"HighBit {self.high_bit} with BitsStored {self.bits_stored} is not supported "
                                    "(pixel values must be low-bit aligned)")

    @property
    def signed(self) -> bool:
        return self.pixel_representation == 1

    @property
    def pixels_per_frame(self) -> int:
        return self.rows * self.columns * self.samples_per_pixel

    @property
    def native_frame_bytes(self) -> int:
        """Bytes of one uncompressed frame: the length that tells raw data from a codestream."""
        return self.pixels_per_frame * (self.bits_allocated // 8)

    @property
    def stored_dtype(self) -> np.dtype:
        """uint8/int8/uint16/int16/uint32/int32: BitsAllocated wide, signed per PixelRepresentation."""
        return np.dtype(f"{'i' if self.signed else 'u'}{self.bits_allocated // 8}")

    @property
    def stored_range(self) -> Tuple[int, int]:
        """Smallest and largest value BitsStored can hold."""
        if self.signed:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1
