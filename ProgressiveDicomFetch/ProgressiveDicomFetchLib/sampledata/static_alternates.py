"""Reduced copies of frames that a static DICOMweb tree offers beside `frames/` (issue 10).

By convention a static server may store, per instance, `jlsThumbnail/<n>` (JPEG-LS lossless of
frame n reduced 4x per side) and `lossy/<n>` (JPEG-LS near-lossless at full size). A client
probes once per series (404 = none) and shows them while the exact frames download.

Both hold STORED values, like the frames: no rescale, no windowing. As in DICOM JPEG-LS, the
sample precision P is BitsStored and signed values are stored as their two's-complement bit
pattern of BitsStored bits, so a decoder that re-reads the bit pattern (pixels.decode) gets
them back. pyjpegls is the encoder because it sets P = BitsStored; imagecodecs always writes
P = 16 for 16-bit arrays, and a near-lossless value of 4095 + NEAR would then wrap to a small
value once masked to 12 bits.

`lossy` is written for unsigned data only: near-lossless errors on a two's-complement pattern
wrap at the signed extremes (-2048 padding + 8 would decode as +2040), so signed instances get
the thumbnail alone. Only greyscale integer pixels of 8 or 16 bits get alternates at all.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence

import numpy as np

from ..pixels import PixelDescription, UnsupportedPixels, decode_frame

logger = logging.getLogger(__name__)

THUMBNAIL = "jlsThumbnail"
LOSSY = "lossy"
ALTERNATE_NAMES = (THUMBNAIL, LOSSY)
ALTERNATE_CONTENT_TYPE = "image/jls"  # the DICOMweb media type of JPEG-LS
THUMBNAIL_FACTOR = 4  # reduction per side
LOSSY_NEAR = 8  # JPEG-LS NEAR: the largest absolute error of a lossy value, in stored units


def check_alternate_names(names: Iterable[str]) -> List[str]:
    """The names in order without repeats; ValueError naming any unknown one."""
    wanted = list(dict.fromkeys(names if not isinstance(names, str) else [names]))
    unknown = [n for n in wanted if n not in ALTERNATE_NAMES]
    if unknown:
        raise ValueError(f"unknown alternate name(s) {unknown}: expected some of {list(ALTERNATE_NAMES)}")
    return wanted


def _jpeg_ls() -> Any:
    try:
        import jpeg_ls
    except ImportError as error:
        raise RuntimeError("static-tree alternates need the 'pyjpegls' package (pip install pyjpegls), "
                           "the JPEG-LS encoder that writes P = BitsStored") from error
    return jpeg_ls


def reduce_blocks(values: np.ndarray, factor: int = THUMBNAIL_FACTOR) -> np.ndarray:
    """Mean of factor x factor blocks, rounded half up, in the input's dtype.

    Sides that do not divide are padded by repeating the last row/column, so every block has
    factor**2 values and integer arithmetic gives the exact rounded mean.
    """
    rows, columns = values.shape
    out_rows, out_columns = -(-rows // factor), -(-columns // factor)
    padded = np.pad(values, ((0, out_rows * factor - rows), (0, out_columns * factor - columns)), mode="edge")
    sums = padded.astype(np.int64).reshape(out_rows, factor, out_columns, factor).sum(axis=(1, 3))
    count = factor * factor
    return ((sums + count // 2) // count).astype(values.dtype)


def bit_pattern(values: np.ndarray, bits_stored: int) -> np.ndarray:
    """Stored values as unsigned BitsStored-wide patterns (two's complement for signed values)."""
    unsigned = np.dtype(f"u{values.dtype.itemsize}")
    return values.astype(unsigned) & unsigned.type((1 << bits_stored) - 1)


def encode_jpegls(values: np.ndarray, bits_stored: int, near: int = 0) -> bytes:
    """One greyscale frame of stored values as a JPEG-LS codestream with P = BitsStored."""
    pattern = np.ascontiguousarray(bit_pattern(values, bits_stored).astype("<u2" if bits_stored > 8 else "u1"))
    rows, columns = values.shape
    return bytes(_jpeg_ls().encode_buffer(pattern.tobytes(), rows, columns, 1, bits_stored, lossy_error=near))


def alternate_names_for(pixels: PixelDescription, wanted: Sequence[str]) -> List[str]:
    """Which of the wanted alternates an instance with these pixels gets (see the module doc)."""
    if pixels.bits_allocated not in (8, 16) or pixels.bits_stored < 2:
        return []
    return [name for name in wanted if name != LOSSY or not pixels.signed]


def pixel_description(ds: Any) -> Optional[PixelDescription]:
    """The instance's PixelDescription, or None when it has no pixels alternates could reduce."""
    try:
        return PixelDescription.from_dataset(ds)
    except (UnsupportedPixels, ValueError) as error:
        logger.info("%s: no alternates (%s)", getattr(ds, "SOPInstanceUID", "?"), error)
        return None


def write_alternates(instance_dir: Path, frames: Sequence[bytes], transfer_syntax: str,
                     pixels: PixelDescription, names: Sequence[str]) -> None:
    """Decode every frame once and write `<instance_dir>/<name>/<n>` for each name (plain files)."""
    folders = {name: instance_dir / name for name in names}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for number, frame in enumerate(frames, start=1):
        values = decode_frame(frame, transfer_syntax, pixels)
        if THUMBNAIL in folders:
            thumbnail = encode_jpegls(reduce_blocks(values), pixels.bits_stored)
            (folders[THUMBNAIL] / str(number)).write_bytes(thumbnail)
        if LOSSY in folders:
            (folders[LOSSY] / str(number)).write_bytes(encode_jpegls(values, pixels.bits_stored, LOSSY_NEAR))
