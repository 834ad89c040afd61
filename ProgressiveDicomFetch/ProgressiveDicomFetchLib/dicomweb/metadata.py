"""WADO-RS series metadata parsed into instance records: what the geometry work needs, no pixels.

Each record keeps the whole instance as a pydicom `Dataset` (pydicom parses DICOM JSON well, in
2.4 and 3.0) and the BulkDataURIs it refers to (static servers point frames at relative URIs).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pydicom

from .errors import BadResponse
from .search import _check_uid
from .server import DicomwebServer

logger = logging.getLogger(__name__)


@dataclass
class InstanceMetadata:
    """One instance of a series, from its metadata (no pixel data)."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: Optional[int]
    rows: Optional[int]
    columns: Optional[int]
    number_of_frames: int
    transfer_syntax_uid: Optional[str]  # often absent (Orthanc 1.10 does not send it)
    dataset: pydicom.Dataset = field(repr=False)
    bulk_data: Dict[str, str] = field(default_factory=dict, repr=False)  # tag hex -> BulkDataURI


def parse_instance(item: Dict[str, Any], where: str = "") -> InstanceMetadata:
    """One DICOM JSON dataset -> record; BadResponse names the instance when it cannot be parsed."""
    bulk: Dict[str, str] = {}

    def remember(tag: str, vr: str, uri: str) -> bytes:
        bulk[str(tag).upper()] = uri
        return b""

    sop = _first(item, "00080018")
    if not sop:
        raise BadResponse(f"{where}: an instance has no SOPInstanceUID", where)
    try:
        ds = pydicom.Dataset.from_json(item, bulk_data_uri_handler=remember)
    except Exception as error:  # pydicom raises several types for malformed JSON values
        raise BadResponse(f"{where}: instance {sop} has malformed metadata ({error})", where) from None
    frames = _int(ds.get("NumberOfFrames"))
    meta_ts = _first(item, "00020010")
    return InstanceMetadata(
        study_uid=str(ds.get("StudyInstanceUID", "")), series_uid=str(ds.get("SeriesInstanceUID", "")),
        sop_instance_uid=str(sop), sop_class_uid=str(ds.get("SOPClassUID", "")),
        instance_number=_int(ds.get("InstanceNumber")), rows=_int(ds.get("Rows")), columns=_int(ds.get("Columns")),
        number_of_frames=frames if frames else 1, transfer_syntax_uid=str(meta_ts) if meta_ts else None,
        dataset=ds, bulk_data=bulk,
    )


def series_metadata(server: DicomwebServer, study_uid: str, series_uid: str) -> List[InstanceMetadata]:
    """All instances of a series (WADO-RS `/metadata`; JSON may come gzip-compressed)."""
    _check_uid("StudyInstanceUID", study_uid)
    _check_uid("SeriesInstanceUID", series_uid)
    path = f"studies/{study_uid}/series/{series_uid}/metadata"
    started = time.monotonic()
    items = server.get_json(path)
    where = server.url_for(path)
    records = [parse_instance(item, where) for item in items]
    if not records:
        raise BadResponse(f"{where}: the series has no instances", where)
    wrong = [r.sop_instance_uid for r in records if r.series_uid and r.series_uid != series_uid]
    if wrong:
        raise BadResponse(f"{where}: {len(wrong)} instances belong to another series", where)
    logger.info("metadata of series %s: %d instances in %.2f s", series_uid, len(records), time.monotonic() - started)
    return records


def _first(item: Dict[str, Any], tag: str) -> Optional[Any]:
    value = item.get(tag, {}).get("Value")
    return value[0] if value else None


def _int(value: Any) -> Optional[int]:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None
