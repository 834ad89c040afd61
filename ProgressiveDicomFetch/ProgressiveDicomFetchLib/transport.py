"""Which protocol a server object speaks, and the calls that differ by it (DICOMweb or DIMSE).

The engine, loads, command line and Logic hold "a server"; only these calls look at its kind, so
adding a transport touches this file, not theirs.
"""
from __future__ import annotations

from types import ModuleType
from typing import Any, List, Optional

from .dicomweb.metadata import InstanceMetadata, series_metadata

DIMSE_SCHEME = "dimse://"


def is_dimse(server: Any) -> bool:
    return getattr(server, "protocol", "dicomweb") == "dimse"


def search_functions(server: Any) -> ModuleType:
    """The module with `search_studies/series/instances` for the server (same signatures and results)."""
    if is_dimse(server):
        from .dimse import find
        return find
    from .dicomweb import search
    return search


def series_instances(server: Any, study_uid: str, series_uid: str) -> List[InstanceMetadata]:
    """The series' instance metadata: WADO-RS /metadata, or an image-level C-FIND."""
    if is_dimse(server):
        return server.series_metadata(study_uid, series_uid)
    return series_metadata(server, study_uid, series_uid)


def offers_previews(server: Any) -> bool:
    """Whether in-plane preview sources may be probed (DICOMweb only)."""
    return getattr(server, "previews", True)


def open_server(address: str, calling_aet: str = "", timeout: float = 30.0, move_port: Optional[int] = None) -> Any:
    """A DimseServer for `AET@host:port` or `dimse://AET@host:port` (the Logic's and CLI's form);
    with `move_port`, it retrieves by C-MOVE to our AE title listening there."""
    from .dimse import DEFAULT_CALLING_AET, DimseServer
    return DimseServer(address, calling_aet or DEFAULT_CALLING_AET, timeout=timeout, connect_timeout=min(10.0, timeout),
                       move_port=move_port)


def dimse_packages() -> List[str]:
    """The pip requirement that adds DIMSE here ([] when pynetdicom is installed): pynetdicom 2.0
    goes with pydicom 2 (Slicer 5.8), 3.x with pydicom 3."""
    import importlib.util

    import pydicom

    if importlib.util.find_spec("pynetdicom") is not None:
        return []
    return ["pynetdicom>=2.0,<2.1"] if int(pydicom.__version__.split(".")[0]) < 3 else ["pynetdicom>=3.0"]
