"""In-plane previews from the start of an HTJ2K codestream (the Cornerstone3D approach).

In a single-tile codestream whose progression is resolution first (RPCL or RLCP), the bytes of
the lowest resolutions come first: a prefix holds a reduced image. imagecodecs (OpenJPH) decodes
such a prefix with `resilient=True`; decoding at full size (skipres 0) gives the best preview (the
missing detail subbands are zero: a wavelet interpolation; measured in docs/previews.md). Its output of
unsigned data wraps small undershoots to large values, so the result is re-read as signed and
clipped to the stored range. imagecodecs is optional (not bundled with Slicer): without it there
are no prefix previews and loading goes on with full frames.
"""
from __future__ import annotations

import importlib
import logging
import math
import struct
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional

import numpy as np

from .. import transfer_syntax as ts
from .description import PixelDescription
from .errors import DecodeError

logger = logging.getLogger(__name__)

SOC_SIZ = b"\xff\x4f\xff\x51"  # start of codestream, then the SIZ marker
SOT, COD, CAP = 0xFF90, 0xFF52, 0xFF50
PROGRESSIONS = ("LRCP", "RLCP", "RPCL", "PCRL", "CPRL")
RESOLUTION_FIRST = ("RLCP", "RPCL")
HT_CODE_BLOCKS = 0x40  # code-block style bit: HT (Part 15) code blocks
LABEL = "HTJ2K prefix"
PACKAGE = "imagecodecs"


@dataclass(frozen=True)
class CodestreamLayout:
    """What the main header says about how a prefix of the codestream can be decoded."""

    columns: int
    rows: int
    tiles: int
    progression: str
    levels: int  # wavelet decomposition levels: a prefix may hold 1/2**levels .. full size
    high_throughput: bool

    def why_not_previewable(self) -> Optional[str]:
        """None when a prefix holds a reduced image; else the reason, for the log."""
        if not self.high_throughput:
            return "not an HTJ2K codestream"
        if self.tiles != 1:
            return f"{self.tiles} tiles (a prefix covers only the first ones)"
        if self.progression not in RESOLUTION_FIRST:
            return f"progression order {self.progression} (resolution-first RPCL or RLCP needed)"
        if self.levels < 1:
            return "no wavelet decomposition levels"
        return None


def find_codestream(body: bytes, search: int = 4096) -> int:
    """Offset of the codestream in a frame body (0 for a bare one; after the part header of a
    single-part multipart file); -1 when it does not start within `search` bytes."""
    return bytes(body[:search]).find(SOC_SIZ)


def codestream_layout(data: bytes) -> CodestreamLayout:
    """Parse SIZ and COD from the main header; ValueError when they are missing or malformed."""
    data = bytes(data)
    if not data.startswith(SOC_SIZ):
        raise ValueError("not a JPEG 2000 codestream (no SOC/SIZ at its start)")
    position, siz, cod, cap = 2, None, None, False
    while position + 4 <= len(data):
        marker, length = struct.unpack(">HH", data[position:position + 4])
        segment = data[position + 4:position + 2 + length]
        if marker == SOT or len(segment) != length - 2:
            break
        if marker == 0xFF51:
            siz = segment
        elif marker == COD:
            cod = segment
        elif marker == CAP:
            cap = True
        position += 2 + length
    if siz is None or cod is None or len(siz) < 36 or len(cod) < 10:
        raise ValueError("the codestream's main header lacks a complete SIZ or COD marker")
    xsiz, ysiz, xo, yo, xt, yt, xto, yto = struct.unpack(">8I", siz[2:34])
    if xt == 0 or yt == 0:
        raise ValueError("SIZ gives a zero tile size")
    tiles = math.ceil((xsiz - xto) / xt) * math.ceil((ysiz - yto) / yt)
    progression = PROGRESSIONS[cod[1]] if cod[1] < len(PROGRESSIONS) else f"unknown ({cod[1]})"
    return CodestreamLayout(columns=xsiz - xo, rows=ysiz - yo, tiles=tiles, progression=progression,
                            levels=cod[5], high_throughput=cap or bool(cod[8] & HT_CODE_BLOCKS))


def _imagecodecs() -> Optional[Any]:
    try:
        module = importlib.import_module("imagecodecs")
    except ImportError:
        return None
    codec = getattr(module, "HTJ2K", None)
    return module if codec is not None and getattr(codec, "available", True) else None


def previews_available() -> bool:
    """True when a decoder of codestream prefixes is installed (imagecodecs with HTJ2K)."""
    return _imagecodecs() is not None


def preview_packages(transfer_syntaxes: Iterable[Optional[str]]) -> List[str]:
    """What to install for prefix previews of frames stored in these syntaxes ([] when nothing)."""
    if previews_available() or not any(ts.family(uid) == ts.HTJ2K_FAMILY for uid in transfer_syntaxes):
        return []
    return [PACKAGE]


def _reduced(codestream: bytes, skip: int, resilient: bool) -> np.ndarray:
    module = _imagecodecs()
    if module is None:
        raise DecodeError(LABEL, f"decoding HTJ2K prefixes needs the {PACKAGE} package")
    return np.asarray(module.htj2k_decode(codestream, skipres=skip, resilient=resilient))


def level_end(codestream: bytes, skip: int) -> int:
    """The shortest prefix of `codestream` (a whole one, or a prefix holding the level) that decodes
    like all of it at 1/2**skip size: where that resolution level ends. Measured once per series to
    size its prefixes; a result near the end of a prefix means the level may go on beyond it."""
    reference = _reduced(codestream, skip, resilient=True)
    low, high = 2, len(codestream)
    while low < high:
        middle = (low + high) // 2
        try:
            same = np.array_equal(_reduced(codestream[:middle], skip, resilient=True), reference)
        except Exception:  # a prefix too short for the decoder: it raises
            same = False
        if same:
            high = middle
        else:
            low = middle + 1
    return low


def preview_level(layout: CodestreamLayout, smallest_side: int = 128) -> int:
    """How many levels to skip for the preview: the most that keeps its shorter side >= smallest_side
    (128x128 for a 512x512 frame: 1/16 of the pixels, ~8 % of the bytes; at most the codestream's
    levels, at least 1)."""
    side = min(layout.rows, layout.columns)
    skip = 1
    while skip < layout.levels and math.ceil(side / 2 ** (skip + 1)) >= smallest_side:
        skip += 1
    return skip


def decode_prefix(prefix: bytes, pixels: PixelDescription) -> np.ndarray:
    """A prefix of a codestream -> a full-size (rows, columns) preview of STORED values."""
    try:
        decoded = _reduced(bytes(prefix), 0, resilient=True)
    except DecodeError:
        raise
    except Exception as error:  # the decoder's own errors: RuntimeError, ValueError, imagecodecs errors
        raise DecodeError(LABEL, f"the {len(prefix)}-byte prefix does not decode ({error})") from None
    if decoded.ndim == 3 and decoded.shape[-1] == 1:
        decoded = decoded[..., 0]
    if decoded.shape != (pixels.rows, pixels.columns):
        raise DecodeError(LABEL, f"decoded shape {decoded.shape}, the metadata says {pixels.rows} x {pixels.columns}")
    return clip_to_stored(decoded, pixels)


def clip_to_stored(values: np.ndarray, pixels: PixelDescription) -> np.ndarray:
    """Approximate values (a preview's overshoot, wrapped undershoot) as the stored dtype, clipped to
    the range BitsStored allows. Unsigned results narrower than 16 bits are re-read as signed."""
    array = np.asarray(values)
    if array.dtype.kind == "u" and array.dtype.itemsize == 2 and pixels.bits_stored < 16:
        array = array.view(np.int16)
    bits = pixels.bits_stored
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if pixels.signed else (0, (1 << bits) - 1)
    if array.dtype.kind == "f":
        array = np.rint(array)  # a new array: the caller's stays as it was, and the clip goes in place
        np.clip(array, low, high, out=array)
        return array.astype(pixels.stored_dtype, copy=False)
    if not (np.iinfo(array.dtype).min <= low and high <= np.iinfo(array.dtype).max):
        array = array.astype(np.int64)  # clip where both bounds fit (in place of the decoder's dtype: fast)
    return np.clip(array, low, high).astype(pixels.stored_dtype, copy=False)
