"""DIMSE failures a user can act on. They derive from the DICOMweb error classes (the names there
are protocol-neutral in use: unreachable, refused, not found, bad answer), so the engine, the
command line and the panel handle both transports alike; `url` is the peer's `dimse://` address."""
from __future__ import annotations

from ..dicomweb.errors import AuthenticationFailed, BadResponse, DicomwebError, NotFound, ServerUnreachable

__all__ = ["AssociationRejected", "ContextRefused", "DimseFailed", "NotFound", "PeerUnreachable", "PeerVanished",
           "PynetdicomMissing"]


class PynetdicomMissing(DicomwebError):
    """pynetdicom is not installed (an optional extra: `pip install ProgressiveDicomFetch[dimse]`)."""


class PeerUnreachable(ServerUnreachable):
    """No TCP connection to the peer, or no answer to the association request in time."""


class AssociationRejected(AuthenticationFailed):
    """The peer refused the association (A-ASSOCIATE-RJ): an unknown calling or wrong called AE title."""


class ContextRefused(BadResponse):
    """The peer accepted the association but not the presentation context (SOP class) we need."""


class PeerVanished(ServerUnreachable):
    """The association ended mid-operation: the peer aborted, closed the connection or stopped answering."""


class DimseFailed(BadResponse):
    """The peer answered a C-FIND or C-GET with a failure status."""
