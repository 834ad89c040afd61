"""What a frame's bytes really are: declared syntax and media type checked against length and magic.

Labels lie. Orthanc 1.10 sends stored HTJ2K frames labelled Explicit VR Little Endian; static
servers label frames by media type only; some servers send raw bytes under a compressed label.
So the declared syntax is a hint, and the bytes decide:
- raw frames have exactly Rows x Columns x bytes per pixel (one pad byte tolerated);
- `FF 4F FF 51` starts a J2K codestream, HTJ2K when its main header has a CAP marker (`FF 50`);
- `00 00 00 0C 6A 50 20 20` starts a JP2/JPH file (the `jph ` brand means HTJ2K);
- `FF D8` starts the JPEG family, whose SOF marker tells baseline/extended (C0/C1/C2),
  lossless (C3) and JPEG-LS (F7);
- RLE has no magic, only a header: segment count 1..15 and a first offset of 64.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Optional

from .. import transfer_syntax as ts
from .description import PixelDescription
from .errors import DecodeError

logger = logging.getLogger(__name__)

J2K_SOC_SIZ = b"\xff\x4f\xff\x51"
JP2_SIGNATURE = b"\x00\x00\x00\x0c\x6a\x50\x20\x20"
JPEG_SOI = b"\xff\xd8"
J2K_CAP = 0xFF50
J2K_SOT = 0xFF90
JPEG_SOS = 0xDA
JPEG_LS_SOF = 0xF7
JPEG_LOSSLESS_SOFS = (0xC3, 0xC7, 0xCB, 0xCF)
JPEG_STANDALONE = set(range(0xD0, 0xD8)) | {0x01, 0xD8}


@dataclass(frozen=True)
class FrameKind:
    """The codec family of a frame's bytes, and how they were labelled (for messages)."""

    family: str
    label: str
    mislabelled: bool = False

    def describe(self) -> str:
        if self.mislabelled:
            return f"{self.family} data labelled {self.label}"
        return self.label


def j2k_is_htj2k(codestream: bytes) -> bool:
    """True when the main header (markers before the first SOT) has a CAP marker (Part 15)."""
    pos = 2  # after SOC
    while pos + 4 <= len(codestream):
        marker, length = struct.unpack_from(">HH", codestream, pos)
        if marker == J2K_CAP:
            return True
        if marker == J2K_SOT or marker >> 8 != 0xFF:
            return False
        pos += 2 + length
    return False


def jpeg_sof(stream: bytes) -> Optional[int]:
    """The SOF marker's second byte (0xC0, 0xC3, 0xF7...), or None before SOS / end of data."""
    pos = 2
    size = len(stream)
    while pos + 2 <= size:
        if stream[pos] != 0xFF:
            return None
        marker = stream[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in JPEG_STANDALONE:
            pos += 2
            continue
        if marker == JPEG_SOS or pos + 4 > size:
            return None
        if (0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == JPEG_LS_SOF:
            return marker
        pos += 2 + struct.unpack_from(">H", stream, pos + 2)[0]
    return None


def sniff(data: bytes) -> Optional[str]:
    """The family the magic bytes prove, or None (raw data, RLE, or unknown)."""
    head = bytes(data[:12])
    if head.startswith(J2K_SOC_SIZ):
        return ts.HTJ2K_FAMILY if j2k_is_htj2k(bytes(data[:4096])) else ts.J2K
    if head.startswith(JP2_SIGNATURE):
        start = bytes(data[:4096])
        if b"ftypjph " in start:
            return ts.HTJ2K_FAMILY
        soc = start.find(J2K_SOC_SIZ)
        return ts.HTJ2K_FAMILY if soc >= 0 and j2k_is_htj2k(start[soc:]) else ts.J2K
    if head.startswith(JPEG_SOI):
        sof = jpeg_sof(bytes(data[:65536]))
        if sof == JPEG_LS_SOF:
            return ts.JPEG_LS
        if sof in JPEG_LOSSLESS_SOFS:
            return ts.JPEG_LL
        return ts.JPEG
    return None


def looks_like_rle(data: bytes, pixels: PixelDescription) -> bool:
    """A DICOM RLE header: one segment per byte plane, the first right after the 64-byte header."""
    if len(data) < 64:
        return False
    header = struct.unpack_from("<16I", data, 0)
    count = header[0]
    expected = pixels.samples_per_pixel * pixels.bits_allocated // 8
    offsets = header[1:count + 1]
    return (count == expected and offsets[0] == 64
            and all(a < b for a, b in zip(offsets, offsets[1:])) and offsets[-1] < len(data))


def identify(data: bytes, transfer_syntax_uid: Optional[str], pixels: PixelDescription,
             content_type: Optional[str] = None) -> FrameKind:
    """The family to decode `data` with; DecodeError when neither label nor bytes make sense."""
    declared = ts.family(transfer_syntax_uid) or ts.media_type_family(content_type)
    label = ts.name(transfer_syntax_uid) if transfer_syntax_uid else (content_type or "unlabelled data")
    native = declared in (ts.NATIVE_LE, ts.NATIVE_BE, None)
    size = pixels.native_frame_bytes
    raw_size = len(data) in (size, size + 1)
    if native and raw_size:
        return FrameKind(declared or ts.NATIVE_LE, label)
    found = sniff(data)
    if found is not None:
        if found != declared:
            logger.debug("frame labelled %s is %s by its magic bytes", label, found)
        return FrameKind(found, label, mislabelled=declared is not None and found != declared)
    if looks_like_rle(data, pixels):
        return FrameKind(ts.RLE, label, mislabelled=declared not in (ts.RLE, None))
    if raw_size:
        return FrameKind(ts.NATIVE_LE, label, mislabelled=declared is not None)
    if native:
        raise DecodeError(label, f"a raw frame needs {size} bytes (Rows {pixels.rows} x Columns "
                                 f"{pixels.columns} x {pixels.bits_allocated // 8}), got {len(data)} bytes "
                                 f"that are no known codestream (starting {bytes(data[:4]).hex(' ')})")
    raise DecodeError(label, f"the {len(data)} bytes are not {declared} data "
                             f"(they start {bytes(data[:4]).hex(' ') or 'with nothing'})")
