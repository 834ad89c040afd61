"""Decoder chains per codec family, fastest first, every codec package imported lazily.

Order measured on a 512x512 12-bit CT frame (2 cores; see the report of the decode step):
imagecodecs is fastest for the JPEG family (libjpeg-turbo: 1.7 ms lossless vs 11 ms libjpeg)
and for HTJ2K (OpenJPH: 1.5 ms vs 3.2 ms OpenJPEG); pyjpegls and imagecodecs tie on JPEG-LS
(~4.2 ms vs 19 ms libjpeg); pylibjpeg-rle is fastest for RLE (0.4 ms); J2K is ~29 ms with either
OpenJPEG binding. The last resort is pydicom's own machinery on a minimal Dataset: slower, but it
is what Slicer has without plugins (numpy RLE; Pillow J2K on pydicom 2.4).
Backends return any array holding the frame's values; decode.py shapes and types it.
"""
from __future__ import annotations

import importlib
import logging
import re
import threading
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from .. import transfer_syntax as ts
from .description import PixelDescription
from .errors import CodecUnavailable, DecodeError

logger = logging.getLogger(__name__)

Backend = Callable[[bytes, PixelDescription], Any]
JFIF_MARKER = re.compile(rb"\xff\xe0..JFIF\x00", re.S)
ADOBE_MARKER = re.compile(rb"\xff\xee(..)Adobe(.{7})", re.S)
_missing: Dict[str, bool] = {}
_lock = threading.Lock()


class BackendUnavailable(Exception):
    """This backend cannot run here (package or codec missing); the next one is tried."""


def _module(name: str) -> Any:
    if _missing.get(name):
        raise BackendUnavailable(name)
    try:
        return importlib.import_module(name)
    except ImportError:
        with _lock:
            _missing[name] = True
        logger.debug("decoder package %s is not installed", name)
        raise BackendUnavailable(name) from None


def retry_missing() -> List[str]:
    """Forget which decoder packages failed to import, and the import system's directory caches:
    after an install in this session the next decode finds the new package (no restart needed).
    Returns the module names forgotten."""
    with _lock:
        forgotten = sorted(_missing)
        _missing.clear()
    importlib.invalidate_caches()
    if forgotten:
        logger.info("decoder packages to be tried again: %s", ", ".join(forgotten))
    return forgotten


def _imagecodecs(function: str) -> Backend:
    def decode(data: bytes, pixels: PixelDescription) -> Any:
        imagecodecs = _module("imagecodecs")
        codec = getattr(imagecodecs, function, None)
        flag = getattr(imagecodecs, function[:-len("_decode")].upper(), None)
        if codec is None or not getattr(flag, "available", True):  # a build without this codec
            raise BackendUnavailable(f"imagecodecs.{function}")
        return codec(data)
    return decode


def _jpeg8(data: bytes, pixels: PixelDescription) -> Any:
    """libjpeg-turbo. Colour labelled RGB is decoded without a YCbCr transform unless the stream
    says it was transformed (JFIF, or Adobe transform 1), as pydicom decodes it; libjpeg-turbo's
    own guess (from component IDs) would convert, e.g. pydicom's SC_jpeg_no_color_transform.dcm."""
    decode = _imagecodecs("jpeg8_decode")
    if pixels.samples_per_pixel == 3 and pixels.photometric_interpretation == "RGB" and not jpeg_says_ycbcr(data):
        return _module("imagecodecs").jpeg8_decode(data, colorspace="RGB", outcolorspace="RGB")
    return decode(data, pixels)


def jpeg_says_ycbcr(data: bytes) -> bool:
    """True when the header has a JFIF marker (always YCbCr) or an Adobe marker with transform 1."""
    head = bytes(data[:65536])
    if JFIF_MARKER.search(head):
        return True
    adobe = ADOBE_MARKER.search(head)
    return adobe is not None and adobe.group(1)[:2] == b"\x00\x0e" and adobe.group(2)[6:7] == b"\x01"


def _imagecodecs_rle(data: bytes, pixels: PixelDescription) -> Any:
    dtype = np.dtype(f"<u{pixels.bits_allocated // 8}")
    out = _module("imagecodecs").dicomrle_decode(data, dtype=dtype.str)
    return _rle_planes(np.frombuffer(out, dtype), pixels)


def _rle_planes(values: np.ndarray, pixels: PixelDescription) -> np.ndarray:
    """RLE decoders give one plane per sample: colour as (rows, columns, 3)."""
    if pixels.samples_per_pixel == 1:
        return values
    return values.reshape(pixels.samples_per_pixel, pixels.rows, pixels.columns).transpose(1, 2, 0)


def _pylibjpeg_rle(data: bytes, pixels: PixelDescription) -> Any:
    utils = _module("rle.utils")
    out = utils.decode_pixel_data(data, version=2, rows=pixels.rows, columns=pixels.columns,
                                  bits_allocated=pixels.bits_allocated,
                                  samples_per_pixel=pixels.samples_per_pixel, byteorder="<")
    return _rle_planes(np.frombuffer(out, f"<u{pixels.bits_allocated // 8}"), pixels)


def _libjpeg(data: bytes, pixels: PixelDescription) -> Any:
    return _module("libjpeg").decode(data)


def _openjpeg(data: bytes, pixels: PixelDescription) -> Any:
    return _module("openjpeg").decode(data)


def _pyjpegls(data: bytes, pixels: PixelDescription) -> Any:
    return _module("jpeg_ls").decode(np.frombuffer(data, np.uint8))


# The syntax pydicom is told for each family (its decoders then check the stream themselves).
PYDICOM_SYNTAX = {ts.RLE: ts.RLE_LOSSLESS, ts.JPEG_LL: ts.JPEG_LOSSLESS_SV1, ts.JPEG_LS: ts.JPEG_LS_LOSSLESS,
                  ts.J2K: ts.JPEG2000_LOSSLESS, ts.HTJ2K_FAMILY: ts.HTJ2K_LOSSLESS}


def _pydicom_syntax(family: str, pixels: PixelDescription) -> str:
    if family == ts.JPEG:
        return ts.JPEG_BASELINE if pixels.bits_allocated == 8 else ts.JPEG_EXTENDED
    return PYDICOM_SYNTAX[family]


def _pydicom(family: str) -> Backend:
    """pydicom's pixel handlers via a minimal Dataset: the same call on pydicom 2.4 and 3.0."""
    def decode(data: bytes, pixels: PixelDescription) -> Any:
        import pydicom
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.encaps import encapsulate

        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = _pydicom_syntax(family, pixels)
        legacy = int(pydicom.__version__.split(".")[0]) < 3
        if legacy:
            ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.Rows, ds.Columns = pixels.rows, pixels.columns
        ds.SamplesPerPixel = pixels.samples_per_pixel
        if pixels.samples_per_pixel > 1:  # RLE decodes to planes (pydicom 2.4 reads it from here)
            ds.PlanarConfiguration = 1 if family == ts.RLE else pixels.planar_configuration
        ds.PhotometricInterpretation = pixels.photometric_interpretation
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = pixels.bits_allocated, pixels.bits_stored, pixels.high_bit
        ds.PixelRepresentation = pixels.pixel_representation
        ds.PixelData = encapsulate([bytes(data)])
        try:
            values = ds.pixel_array
        except (NotImplementedError, RuntimeError) as error:  # no handler for this syntax here
            raise BackendUnavailable(f"pydicom: {error}") from None
        if family == ts.JPEG and legacy and str(ds.PhotometricInterpretation) in ("YBR_FULL", "YBR_FULL_422"):
            # pydicom 2.4's Pillow handler keeps JPEG's YCbCr and says so by leaving the Photometric
            # Interpretation as it was (its GDCM handler converts and sets it to RGB); the other JPEG
            # decoders, and pydicom 3, give RGB, which colour.py expects of this family: converted
            # here, exactly as pydicom does.
            from .compat import convert_color_space

            values = np.ascontiguousarray(convert_color_space(values, "YBR_FULL", "RGB")).astype(values.dtype, copy=False)
        return values
    return decode


CHAINS: Dict[str, Tuple[Tuple[str, Backend], ...]] = {
    ts.RLE: (("pylibjpeg-rle", _pylibjpeg_rle), ("imagecodecs", _imagecodecs_rle), ("pydicom", _pydicom(ts.RLE))),
    ts.JPEG: (("imagecodecs", _jpeg8), ("pylibjpeg-libjpeg", _libjpeg),
              ("pydicom", _pydicom(ts.JPEG))),
    ts.JPEG_LL: (("imagecodecs", _imagecodecs("jpeg8_decode")), ("imagecodecs", _imagecodecs("ljpeg_decode")),
                 ("pylibjpeg-libjpeg", _libjpeg), ("pydicom", _pydicom(ts.JPEG_LL))),
    ts.JPEG_LS: (("pyjpegls", _pyjpegls), ("imagecodecs", _imagecodecs("jpegls_decode")),
                 ("pylibjpeg-libjpeg", _libjpeg), ("pydicom", _pydicom(ts.JPEG_LS))),
    ts.J2K: (("imagecodecs", _imagecodecs("jpeg2k_decode")), ("pylibjpeg-openjpeg", _openjpeg),
             ("pydicom", _pydicom(ts.J2K))),
    ts.HTJ2K_FAMILY: (("imagecodecs", _imagecodecs("htj2k_decode")), ("imagecodecs", _imagecodecs("jpeg2k_decode")),
                      ("pylibjpeg-openjpeg", _openjpeg), ("pydicom", _pydicom(ts.HTJ2K_FAMILY))),
}


def packages_for(family: str) -> List[str]:
    """Installable packages that decode `family` (for messages), pydicom itself left out."""
    names = [name for name, _ in CHAINS.get(family, ()) if name != "pydicom"]
    return list(dict.fromkeys(names))


def can_decode(family: Optional[str]) -> bool:
    """True when some backend of `family` is importable here (native data always is)."""
    if family in (ts.NATIVE_LE, ts.NATIVE_BE):
        return True
    if family not in CHAINS:
        return False
    modules = {"pylibjpeg-rle": "rle", "imagecodecs": "imagecodecs", "pylibjpeg-libjpeg": "libjpeg",
               "pyjpegls": "jpeg_ls", "pylibjpeg-openjpeg": "openjpeg"}
    for name in packages_for(family):
        try:
            _module(modules[name])
            return True
        except BackendUnavailable:
            continue
    if family == ts.RLE:
        return True  # pydicom's own numpy RLE decoder
    if family in (ts.J2K, ts.JPEG):  # pydicom's Pillow handlers (8-bit JPEG, J2K)
        try:
            _module("PIL.Image")
            return True
        except BackendUnavailable:
            return False
    return False


def decode_compressed(family: str, data: bytes, pixels: PixelDescription, label: str) -> Any:
    """The first backend of the family's chain that runs here decodes; its failure is reported."""
    chain = CHAINS.get(family)
    if chain is None:
        raise DecodeError(label, f"no decoder for {family} data")
    for name, backend in chain:
        try:
            return backend(data, pixels)
        except BackendUnavailable:
            continue
        except Exception as error:  # codec libraries raise their own types (RuntimeError, ValueError...)
            raise DecodeError(label, f"{name} could not decode the {len(data)} bytes: {error}") from error
    packages = packages_for(family)
    raise CodecUnavailable(label, f"no {family} decoder is installed: pip install {packages[0]}"
                                  + (f" (or {', '.join(packages[1:])})" if packages[1:] else ""))


def missing_packages(transfer_syntaxes: Iterable[Optional[str]]) -> List[str]:
    """What to install (the first package of each chain) for the syntaxes no installed decoder reads."""
    families = {ts.family(uid) for uid in transfer_syntaxes} - {None, ts.NATIVE_LE, ts.NATIVE_BE}
    return sorted({packages_for(f)[0] for f in families if packages_for(f) and not can_decode(f)})
