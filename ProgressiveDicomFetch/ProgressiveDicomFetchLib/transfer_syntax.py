"""Transfer syntax facts that hold in pydicom 2.4 and 3.0 alike.

pydicom 2.4 does not know the HTJ2K syntaxes (`UID.is_encapsulated` raises "UID is not a
transfer syntax" for them), so the library asks this module instead of pydicom's UID properties.
"""
from __future__ import annotations

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"

NATIVE = frozenset({IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN,
                    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN})


def is_encapsulated(uid: str) -> bool:
    """True for every compressed (encapsulated) syntax, including ones pydicom 2.4 does not know."""
    return str(uid) not in NATIVE
