"""What one frame's stored pixels look like (Image Pixel module), checked once per instance.

Decoding needs these attributes to tell raw bytes from a codestream by length, to choose the
stored dtype, and to sign-extend or mask. Greyscale (MONOCHROME1/2), colour (RGB, YBR_*, both
planar configurations), PALETTE COLOR and float pixels (Float/DoubleFloatPixelData) are decoded;
bit-packed and other layouts raise `UnsupportedPixels` with a message a user can act on.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT")
PALETTE = "PALETTE COLOR"


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
    float_pixels: bool = False  # FloatPixelData / DoubleFloatPixelData (BitsAllocated 32 / 64)

    def __post_init__(self) -> None:
        self.check()

    @classmethod
    def from_dataset(cls, ds: Any) -> "PixelDescription":
        """From a pydicom Dataset (a file, or series metadata); ValueError names what is wrong."""
        float_pixels = "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
        bits_allocated = _int(ds, "BitsAllocated", 64 if "DoubleFloatPixelData" in ds else None)
        bits_stored = _int(ds, "BitsStored", bits_allocated)
        photometric = str(getattr(ds, "PhotometricInterpretation", "") or "").strip().upper()
        return cls(
            rows=_int(ds, "Rows"),
            columns=_int(ds, "Columns"),
            bits_allocated=bits_allocated,
            bits_stored=bits_stored,
            high_bit=_int(ds, "HighBit", bits_stored - 1),
            pixel_representation=_int(ds, "PixelRepresentation", 0),
            samples_per_pixel=_int(ds, "SamplesPerPixel", 1),
            photometric_interpretation=photometric or ("MONOCHROME2" if float_pixels else ""),
            planar_configuration=_int(ds, "PlanarConfiguration", 0),
            float_pixels=float_pixels,
        )

    def check(self) -> None:
        """ValueError for impossible values; UnsupportedPixels for valid layouts not decoded here."""
        for keyword, value in (("Rows", self.rows), ("Columns", self.columns)):
            if value <= 0:
                raise ValueError(f"{keyword} must be positive, not {value}")
        if self.pixel_representation not in (0, 1):
            raise ValueError(f"PixelRepresentation must be 0 or 1, not {self.pixel_representation}")
        expected = 3 if self.photometric_interpretation in COLOUR else 1
        if self.photometric_interpretation not in GREYSCALE + COLOUR + (PALETTE,) or \
                self.samples_per_pixel != expected:
            raise UnsupportedPixels(
                f"PhotometricInterpretation {self.photometric_interpretation or 'missing'} with SamplesPerPixel "
                f"{self.samples_per_pixel} is not supported (MONOCHROME1/2, PALETTE COLOR: 1 sample; "
                f"{', '.join(COLOUR)}: 3)")
        if self.planar_configuration not in (0, 1):
            raise ValueError(f"PlanarConfiguration must be 0 or 1, not {self.planar_configuration}")
        if self.float_pixels:
            if self.bits_allocated not in (32, 64) or expected != 1:
                raise UnsupportedPixels(f"float pixel data with BitsAllocated {self.bits_allocated} and "
                                        f"{self.photometric_interpretation} is not supported (32 or 64, greyscale)")
            return
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
    def colour(self) -> bool:
        """Three samples per pixel (RGB or YBR): loaded as RGB."""
        return self.samples_per_pixel == 3

    @property
    def components(self) -> int:
        """Components of the loaded voxels: 3 (RGB) for colour and PALETTE COLOR, else 1."""
        return 3 if self.colour or self.photometric_interpretation == PALETTE else 1

    @property
    def pixels_per_frame(self) -> int:
        return self.rows * self.columns * self.samples_per_pixel

    @property
    def native_frame_bytes(self) -> int:
        """Bytes of one uncompressed frame: the length that tells raw data from a codestream
        (YBR_FULL_422 stores two samples per pixel: chroma is shared by pixel pairs)."""
        samples = self.rows * self.columns * 2 if self.photometric_interpretation == "YBR_FULL_422" \
            else self.pixels_per_frame
        return samples * (self.bits_allocated // 8)

    @property
    def stored_dtype(self) -> np.dtype:
        """uint8/int8/uint16/int16/uint32/int32: BitsAllocated wide, signed per PixelRepresentation;
        float32/float64 for float pixel data."""
        if self.float_pixels:
            return np.dtype(f"f{self.bits_allocated // 8}")
        return np.dtype(f"{'i' if self.signed else 'u'}{self.bits_allocated // 8}")

    @property
    def stored_range(self) -> Tuple[int, int]:
        """Smallest and largest value BitsStored can hold."""
        if self.signed:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1
