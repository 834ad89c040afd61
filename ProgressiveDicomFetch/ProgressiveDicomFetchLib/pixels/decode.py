"""One frame's bytes -> a (rows, columns) array of STORED values, or a DecodeError. Never garbage.

Colour frames come out as (rows, columns, 3) RGB, converted from YBR exactly as pydicom does
(colour.py); PALETTE COLOR frames as their (rows, columns) indices (the LUT is applied on load);
float pixel data as float32/float64.

The result has `pixels.stored_dtype`: signed values are sign-extended from BitsStored, unused
high bits of unsigned values are masked (they may hold overlays). Decoders disagree about
signedness (a JPEG 2000 codestream may be unsigned for signed data, JPEG-LS stores signed data
as unsigned), so every result is re-read from its bit pattern, which is what DICOM defines.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Optional

import numpy as np

from .. import transfer_syntax as ts
from .codecs import decode_compressed
from .colour import expand_ybr422, to_rgb
from .description import PixelDescription
from .errors import DecodeError
from .identify import FrameKind, identify

logger = logging.getLogger(__name__)

END_OF_IMAGE = b"\xff\xd9"  # JPEG EOI and J2K EOC share the code
MARKER_FAMILIES = (ts.JPEG, ts.JPEG_LL, ts.JPEG_LS, ts.J2K, ts.HTJ2K_FAMILY)


def decode_frame(data: bytes, transfer_syntax_uid: Optional[str], pixels: PixelDescription,
                 content_type: Optional[str] = None) -> np.ndarray:
    """Decode one frame whatever its label says; see identify.py for how the bytes are recognised."""
    if pixels.photometric_interpretation == "YBR_FULL_422" and len(data) in _interleaved_sizes(pixels) \
            and ts.family(transfer_syntax_uid) in (ts.NATIVE_LE, ts.NATIVE_BE, None):
        # three samples per pixel: a server decoded the (JPEG) frame, and decoders give RGB
        pixels = replace(pixels, photometric_interpretation="RGB")
    kind = identify(data, transfer_syntax_uid, pixels, content_type)
    if kind.family == ts.NATIVE_LE:
        stored = native_to_stored(data, pixels, "<", kind)
    elif kind.family == ts.NATIVE_BE:
        stored = native_to_stored(data, pixels, ">", kind)
    else:
        if kind.family in MARKER_FAMILIES:
            check_end_marker(data, kind)
        decoded = decode_compressed(kind.family, bytes(data), pixels, kind.describe())
        stored = to_stored(decoded, pixels, kind)
    return to_rgb(stored, pixels, kind.family) if pixels.colour else stored


def _interleaved_sizes(pixels: PixelDescription):
    size = pixels.pixels_per_frame * (pixels.bits_allocated // 8)
    return size, size + 1


def check_end_marker(data: bytes, kind: FrameKind) -> None:
    """A complete JPEG/J2K stream ends with FF D9 (maybe followed by a NUL pad): catches truncation,
    which some decoders would otherwise turn into a partly grey image without complaint."""
    tail = bytes(data[-32:]).rstrip(b"\0")
    if END_OF_IMAGE not in tail[-8:]:
        raise DecodeError(kind.describe(), f"the {len(data)}-byte stream is truncated (no end-of-image marker)")


def native_to_stored(data: bytes, pixels: PixelDescription, byteorder: str, kind: FrameKind) -> np.ndarray:
    size = pixels.native_frame_bytes
    if len(data) not in (size, size + 1):
        raise DecodeError(kind.describe(), f"a raw frame needs {size} bytes, got {len(data)}")
    if pixels.float_pixels:
        values = np.frombuffer(data, dtype=f"{byteorder}f{pixels.bits_allocated // 8}", count=pixels.pixels_per_frame)
        return values.reshape(pixels.rows, pixels.columns).astype(pixels.stored_dtype)  # a native-order copy
    width = pixels.bits_allocated // 8
    if pixels.photometric_interpretation == "YBR_FULL_422":
        raw = expand_ybr422(np.frombuffer(data, dtype=f"{byteorder}u{width}", count=size // width), pixels)
    else:
        raw = np.frombuffer(data, dtype=f"{byteorder}u{width}", count=pixels.pixels_per_frame)
    if not pixels.colour:
        return to_stored(raw.reshape(pixels.rows, pixels.columns), pixels, kind)
    if pixels.planar_configuration == 1 and pixels.photometric_interpretation != "YBR_FULL_422":
        return to_stored(raw.reshape(3, pixels.rows, pixels.columns).transpose(1, 2, 0), pixels, kind)
    return to_stored(raw.reshape(pixels.rows, pixels.columns, 3), pixels, kind)


def to_stored(decoded: Any, pixels: PixelDescription, kind: FrameKind) -> np.ndarray:
    """Shape-check, then re-read the bit pattern as BitsStored-wide values of the stored dtype."""
    array = np.asarray(decoded)
    shape = (pixels.rows, pixels.columns) + ((3,) if pixels.colour else ())
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 1 and array.size == pixels.pixels_per_frame:
        array = array.reshape(shape)
    if pixels.colour and array.shape == (3, pixels.rows, pixels.columns) and array.shape[-1] != 3:  # planar
        array = array.transpose(1, 2, 0)
    if array.shape != shape:
        raise DecodeError(kind.describe(), f"decoded an image of shape {array.shape}, the metadata says "
                                           f"{pixels.rows} rows x {pixels.columns} columns"
                                           + (" x 3 samples" if pixels.colour else ""))
    if array.dtype.kind not in "ui":
        raise DecodeError(kind.describe(), f"decoded {array.dtype} values, expected integers")
    unsigned = np.dtype(f"u{pixels.bits_allocated // 8}")
    if array.dtype.itemsize == unsigned.itemsize:
        raw = array.view(unsigned) if array.dtype.isnative else array.astype(unsigned)
    else:
        raw = array.astype(unsigned)  # wraps negatives to their two's-complement pattern
    shift = pixels.bits_allocated - pixels.bits_stored
    if pixels.signed:  # arithmetic right shift of the left-aligned pattern sign-extends it
        out = (raw << unsigned.type(shift)).view(pixels.stored_dtype) >> shift if shift else raw.view(pixels.stored_dtype)
    else:
        out = raw & unsigned.type((1 << pixels.bits_stored) - 1) if shift else raw
    if not out.flags.owndata or not out.flags.writeable:  # never hand out a view of a response or buffer
        out = out.copy()
    return out
