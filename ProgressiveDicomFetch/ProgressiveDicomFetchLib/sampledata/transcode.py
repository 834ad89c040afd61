"""Lossless copies of one series in every transfer syntax the client claims to decode.

Test/demo tooling: the encoders come from imagecodecs (imported lazily); pydicom only
encapsulates. Each copy is its own series (new SeriesInstanceUID and SOPInstanceUIDs) whose
truth volume is the original's.
"""
from __future__ import annotations

import copy
import logging
import struct
from dataclasses import dataclass, replace
from typing import Callable, List

import numpy as np

from ..transfer_syntax import HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL
from .manifest import SeriesInfo, StudyInfo
from .writer import SeriesWriter, save_dataset, uid

log = logging.getLogger(__name__)

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
RLE = "1.2.840.10008.1.2.5"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
RPCL = 2  # progression order code in the COD marker


@dataclass(frozen=True)
class Syntax:
    """One target transfer syntax: key suffix, label for the description, frame encoder."""

    suffix: str
    label: str
    uid: str
    encode: Callable[[np.ndarray, int], bytes]
    encapsulated: bool = True


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "compressed sample copies need the 'imagecodecs' package (pip install imagecodecs)"
        ) from exc
    return imagecodecs


def encode_rle(frame: np.ndarray, bits_stored: int) -> bytes:
    """DICOM RLE (PS3.5 G): one PackBits segment per byte plane, most significant first,
    each row encoded separately so no run crosses a row boundary."""
    packbits = _imagecodecs().packbits_encode
    data = np.ascontiguousarray(frame).astype(frame.dtype.newbyteorder(">"))
    planes = data.view(np.uint8).reshape(frame.shape[0], frame.shape[1], -1)
    segments = []
    for plane in range(planes.shape[2]):
        rows = np.ascontiguousarray(planes[:, :, plane])
        seg = b"".join(packbits(rows[r].tobytes()) for r in range(rows.shape[0]))
        if len(seg) % 2:
            seg += b"\0"
        segments.append(seg)
    offsets, pos = [], 64
    for seg in segments:
        offsets.append(pos)
        pos += len(seg)
    header = struct.pack("<16I", len(segments), *(offsets + [0] * (15 - len(offsets))))
    return header + b"".join(segments)


def encode_jpeg_lossless(frame: np.ndarray, bits_stored: int) -> bytes:
    return _imagecodecs().jpeg8_encode(frame, lossless=True, predictor=1, bitspersample=bits_stored)


def encode_jpegls(frame: np.ndarray, bits_stored: int) -> bytes:
    return _imagecodecs().jpegls_encode(frame, level=0)


def encode_j2k(frame: np.ndarray, bits_stored: int) -> bytes:
    return _imagecodecs().jpeg2k_encode(frame, level=0, codecformat="J2K", reversible=True,
                                        bitspersample=bits_stored)


def encode_htj2k(frame: np.ndarray, bits_stored: int) -> bytes:
    return _imagecodecs().htj2k_encode(frame, reversible=True)


def progression_order(codestream: bytes) -> int:
    """Progression order from the COD marker (0 LRCP, 1 RLCP, 2 RPCL, 3 PCRL, 4 CPRL)."""
    pos = codestream.find(b"\xff\x52")
    if pos < 0:
        raise ValueError("no COD marker in the J2K codestream")
    return codestream[pos + 5]


def syntaxes() -> List[Syntax]:
    return [
        Syntax("implicit", "IMPLICIT VR LE", IMPLICIT_LE, lambda a, b: a.tobytes(), False),
        Syntax("rle", "RLE LOSSLESS", RLE, encode_rle),
        Syntax("jpegll", "JPEG LOSSLESS SV1", JPEG_LOSSLESS_SV1, encode_jpeg_lossless),
        Syntax("jpegls", "JPEG-LS LOSSLESS", JPEG_LS_LOSSLESS, encode_jpegls),
        Syntax("j2k", "JPEG 2000 LOSSLESS", J2K_LOSSLESS, encode_j2k),
        Syntax("htj2k", "HTJ2K LOSSLESS", HTJ2K_LOSSLESS, encode_htj2k),
    ]


def write_copies(writer: SeriesWriter, study: StudyInfo, source: SeriesInfo) -> List[SeriesInfo]:
    """One series per syntax, copied from ``source`` (an explicit VR little endian series)."""
    import pydicom
    from pydicom.encaps import encapsulate

    originals = [pydicom.dcmread(str(writer.root / rel)) for rel in source.files]
    out = []
    for number, syntax in enumerate(syntaxes(), start=1):
        key = f"{source.key}_{syntax.suffix}"
        series_uid = uid("series", key)
        ts = syntax.uid
        files, sops = [], []
        for n, orig in enumerate(originals):
            ds = copy.deepcopy(orig)
            bits = int(ds.BitsStored)
            dtype = np.int16 if ds.PixelRepresentation else np.uint16
            frame = np.frombuffer(orig.PixelData, dtype="<" + np.dtype(dtype).str[1:])
            frame = frame.reshape(int(ds.Rows), int(ds.Columns)).astype(dtype)
            data = syntax.encode(frame, bits)
            if syntax.suffix == "htj2k" and progression_order(data) == RPCL:
                ts = HTJ2K_LOSSLESS_RPCL
            sop = uid("sop", key, n)
            ds.SOPInstanceUID = sop
            ds.file_meta.MediaStorageSOPInstanceUID = sop
            ds.file_meta.TransferSyntaxUID = ts
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = source.series_number * 100 + number
            ds.SeriesDescription = f"{source.description} {syntax.label}"
            if syntax.encapsulated:
                ds.PixelData = encapsulate([data])
                ds["PixelData"].VR = "OB"
                ds["PixelData"].is_undefined_length = True
                ds.LossyImageCompression = "00"
            else:
                ds.PixelData = data
            rel = f"{study.key}/{key}/IM{n + 1:05d}.dcm"
            save_dataset(ds, writer.root / rel)
            files.append(rel)
            sops.append(sop)
        info = replace(source, key=key, series_uid=series_uid,
                       series_number=source.series_number * 100 + number,
                       description=f"{source.description} {syntax.label}",
                       transfer_syntax_uid=ts, files=files, sop_instance_uids=sops,
                       source_key=source.key, expect=dict(source.expect))
        writer.add(info, study)
        out.append(info)
        log.debug("wrote %s (%s)", key, ts)
    return out
