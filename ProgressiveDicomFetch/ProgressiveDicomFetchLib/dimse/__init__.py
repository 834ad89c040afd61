"""DIMSE transport (classic PACS): C-FIND search and progressive image-level C-GET with pynetdicom.

pynetdicom is optional and imported only when an association is opened, never at import time.
"""
from __future__ import annotations

from .address import DEFAULT_CALLING_AET, DimseAddress
from .errors import AssociationRejected, ContextRefused, DimseFailed, PeerUnreachable, PeerVanished, PynetdicomMissing
from .server import DimseServer

__all__ = ["AssociationRejected", "ContextRefused", "DEFAULT_CALLING_AET", "DimseAddress", "DimseFailed",
           "DimseServer", "PeerUnreachable", "PeerVanished", "PynetdicomMissing"]
