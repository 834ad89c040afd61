"""Transfer syntax facts that hold in pydicom 2.4 and 3.0 alike.

pydicom 2.4 does not know the HTJ2K syntaxes (`UID.is_encapsulated` raises "UID is not a
transfer syntax" for them), so the library asks this module instead of pydicom's UID properties.
Each syntax belongs to a codec *family*: what decodes its frames (the SOF marker of a JPEG
stream, or the CAP marker of a J2K codestream, tells the family of bytes whose label is wrong).
"""
from __future__ import annotations

from typing import Dict, Optional

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG2000 = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

NATIVE = frozenset({IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN,
                    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN})

# Codec families: one decoder chain each (pixels/codecs.py).
NATIVE_LE = "native"
NATIVE_BE = "native big endian"
RLE = "RLE"
JPEG = "JPEG"  # baseline (8-bit) and extended (12-bit) DCT
JPEG_LL = "JPEG lossless"
JPEG_LS = "JPEG-LS"
J2K = "JPEG 2000"
HTJ2K_FAMILY = "HTJ2K"

FAMILIES: Dict[str, str] = {
    IMPLICIT_VR_LITTLE_ENDIAN: NATIVE_LE,
    EXPLICIT_VR_LITTLE_ENDIAN: NATIVE_LE,
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: NATIVE_LE,  # deflate applies to the dataset; frames are native
    EXPLICIT_VR_BIG_ENDIAN: NATIVE_BE,
    JPEG_BASELINE: JPEG,
    JPEG_EXTENDED: JPEG,
    JPEG_LOSSLESS: JPEG_LL,
    JPEG_LOSSLESS_SV1: JPEG_LL,
    JPEG_LS_LOSSLESS: JPEG_LS,
    JPEG_LS_NEAR_LOSSLESS: JPEG_LS,
    JPEG2000_LOSSLESS: J2K,
    JPEG2000: J2K,
    HTJ2K_LOSSLESS: HTJ2K_FAMILY,
    HTJ2K_LOSSLESS_RPCL: HTJ2K_FAMILY,
    HTJ2K: HTJ2K_FAMILY,
    RLE_LOSSLESS: RLE,
}

NAMES: Dict[str, str] = {
    IMPLICIT_VR_LITTLE_ENDIAN: "Implicit VR Little Endian",
    EXPLICIT_VR_LITTLE_ENDIAN: "Explicit VR Little Endian",
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN: "Deflated Explicit VR Little Endian",
    EXPLICIT_VR_BIG_ENDIAN: "Explicit VR Big Endian",
    JPEG_BASELINE: "JPEG Baseline",
    JPEG_EXTENDED: "JPEG Extended",
    JPEG_LOSSLESS: "JPEG Lossless",
    JPEG_LOSSLESS_SV1: "JPEG Lossless SV1",
    JPEG_LS_LOSSLESS: "JPEG-LS Lossless",
    JPEG_LS_NEAR_LOSSLESS: "JPEG-LS Near-Lossless",
    JPEG2000_LOSSLESS: "JPEG 2000 Lossless",
    JPEG2000: "JPEG 2000",
    HTJ2K_LOSSLESS: "HTJ2K Lossless",
    HTJ2K_LOSSLESS_RPCL: "HTJ2K Lossless RPCL",
    HTJ2K: "HTJ2K",
    RLE_LOSSLESS: "RLE Lossless",
}

# DICOMweb media types of single frames (PS3.18 8.7.3.5).
OCTET_STREAM = "application/octet-stream"
MEDIA_TYPES: Dict[str, str] = {
    JPEG_BASELINE: "image/jpeg", JPEG_EXTENDED: "image/jpeg",
    JPEG_LOSSLESS: "image/jpeg", JPEG_LOSSLESS_SV1: "image/jpeg",
    JPEG_LS_LOSSLESS: "image/jls", JPEG_LS_NEAR_LOSSLESS: "image/jls",
    JPEG2000_LOSSLESS: "image/jp2", JPEG2000: "image/jp2",
    HTJ2K_LOSSLESS: "image/jphc", HTJ2K_LOSSLESS_RPCL: "image/jphc", HTJ2K: "image/jphc",
    RLE_LOSSLESS: "image/dicom-rle",
}
# Media type -> family, for static servers that label frames by media type only.
MEDIA_TYPE_FAMILIES: Dict[str, str] = {
    "image/jpeg": JPEG,  # the SOF marker refines it (baseline, lossless)
    "image/jls": JPEG_LS,
    "image/jp2": J2K, "image/jpx": J2K,
    "image/jphc": HTJ2K_FAMILY, "image/jph": HTJ2K_FAMILY,
    "image/dicom-rle": RLE, "image/x-dicom-rle": RLE,
    OCTET_STREAM: NATIVE_LE,
}


def is_encapsulated(uid: str) -> bool:
    """True for every compressed (encapsulated) syntax, including ones pydicom 2.4 does not know."""
    return str(uid) not in NATIVE


def family(uid: Optional[str]) -> Optional[str]:
    """The codec family of a transfer syntax UID; None when unknown or not given."""
    return FAMILIES.get(str(uid).strip()) if uid else None


def name(uid: Optional[str]) -> str:
    """A readable name for messages: 'JPEG-LS Lossless (1.2.840.10008.1.2.4.80)'."""
    if not uid:
        return "unknown transfer syntax"
    uid = str(uid).strip()
    return f"{NAMES[uid]} ({uid})" if uid in NAMES else f"transfer syntax {uid}"


def media_type(uid: str) -> str:
    """The single-frame media type a WADO-RS Accept header names for this syntax."""
    return MEDIA_TYPES.get(str(uid), OCTET_STREAM)


def media_type_family(content_type: Optional[str]) -> Optional[str]:
    """The family a frame's media type implies ('image/jphc' -> HTJ2K); None when it says nothing."""
    if not content_type:
        return None
    return MEDIA_TYPE_FAMILIES.get(content_type.split(";", 1)[0].strip().lower())
