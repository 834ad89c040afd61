"""C-FIND (study root) at study, series and image level, with the QIDO search's filters, records
and `SearchResult`: the same form, tables and scripts work with a DIMSE peer.

Filters go to the peer as their wire values (a superset, like QIDO) and every answer is matched
again on the client (dicomweb/matching.py). DIMSE has no paging: every answer is read, the first
`limit` are kept and the result says how many were dropped.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence

from pydicom.dataset import Dataset

from ..dicomweb.filters import Filter, attribute, check_single_uid, parse_filters
from ..dicomweb.records import InstanceRecord, SeriesRecord, StudyRecord
from ..dicomweb.search import INSTANCE_FIELDS, SERIES_FIELDS, STUDY_FIELDS, Filters, SearchResult, keep_matching
from .association import Peer
from .errors import DimseFailed, NotFound

logger = logging.getLogger(__name__)

FIND_MODEL = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND
IMPLICIT_LE, EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
PENDING = (0xFF00, 0xFF01)
DEFAULT_LIMIT = 1000  # no paging in DIMSE: more than this is read but dropped (and said)
# What QIDO returns without includefield, per level (the records' identifying fields).
STUDY_KEYS = ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate") + STUDY_FIELDS
SERIES_KEYS = ("SeriesInstanceUID", "Modality", "SeriesNumber") + SERIES_FIELDS
INSTANCE_KEYS = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber") + INSTANCE_FIELDS


def search_studies(server: Any, filters: Filters = None, *, limit: Optional[int] = DEFAULT_LIMIT,
                   includefield: Sequence[str] = ()) -> SearchResult[StudyRecord]:
    """Studies matching the filters (PatientName, PatientID, StudyDate ranges, ModalitiesInStudy, ...)."""
    return find(server.peer, "STUDY", parse_filters(filters), {}, STUDY_KEYS + tuple(includefield), limit, StudyRecord)


def search_series(server: Any, study_uid: Optional[str] = None, filters: Filters = None, *,
                  limit: Optional[int] = DEFAULT_LIMIT, includefield: Sequence[str] = ()) -> SearchResult[SeriesRecord]:
    """Series of one study (or of all studies when `study_uid` is None)."""
    parsed = parse_filters(filters)
    fixed = {} if study_uid is None else {"StudyInstanceUID": study_uid}
    if study_uid is not None:
        check_single_uid("StudyInstanceUID", study_uid)
    result = find(server.peer, "SERIES", parsed, fixed, SERIES_KEYS + tuple(includefield), limit, SeriesRecord)
    if study_uid is not None and not result.records:
        _require_study(server.peer, study_uid)
    return result


def search_instances(server: Any, study_uid: str, series_uid: Optional[str] = None, filters: Filters = None, *,
                     limit: Optional[int] = DEFAULT_LIMIT, includefield: Sequence[str] = ()
                     ) -> SearchResult[InstanceRecord]:
    """Instances of a study, or of one of its series."""
    check_single_uid("StudyInstanceUID", study_uid)
    fixed = {"StudyInstanceUID": study_uid}
    if series_uid is not None:
        check_single_uid("SeriesInstanceUID", series_uid)
        fixed["SeriesInstanceUID"] = series_uid
    result = find(server.peer, "IMAGE", parse_filters(filters), fixed, INSTANCE_KEYS + tuple(includefield), limit,
                  InstanceRecord)
    if not result.records:
        _require_study(server.peer, study_uid)
    return result


def identifier(level: str, filters: Iterable[Filter], fixed: Dict[str, str], keys: Sequence[str]) -> Dataset:
    """The C-FIND identifier: filters as matching keys, `fixed` UIDs, the other `keys` asked empty."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword in keys:
        _, tag, vr = attribute(keyword)
        ds.add_new(int(tag, 16), vr, [] if vr == "SQ" else None)
    for keyword, uid in fixed.items():
        setattr(ds, keyword, uid)
    for flt in filters:
        if not flt.is_universal:
            value = flt.wire_value.replace(",", "\\") if flt.vr == "UI" else flt.wire_value
            ds.add_new(int(flt.tag, 16), flt.vr, value)
    return ds


def find(peer: Peer, level: str, filters: List[Filter], fixed: Dict[str, str], keys: Sequence[str],
         limit: Optional[int], record_type: Any) -> SearchResult:
    """One C-FIND on its own association; answers matched on the client, capped at `limit`."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number, not {limit}")
    answers = [a.to_json_dict() for a in find_datasets(peer, identifier(level, filters, fixed, keys))]
    result: SearchResult = SearchResult(records=[], pages=1)
    kept = keep_matching(answers, filters, result)
    if limit is not None and len(kept) > limit:
        result.dropped, result.truncated = len(kept) - limit, True
        kept = kept[:limit]
    result.records = [record_type.from_json(ds) for ds in kept]
    for note in result.notes():
        logger.info("%s C-FIND %s: %s", peer.url, level, note)
    return result


def find_datasets(peer: Peer, query: Dataset) -> List[Dataset]:
    """Every pending answer of one C-FIND (association opened and released here)."""
    started = time.monotonic()
    link = peer.open([(FIND_MODEL, [EXPLICIT_LE, IMPLICIT_LE])])
    answers: List[Dataset] = []
    try:
        peer.require(link, FIND_MODEL)
        what = f"C-FIND at {query.QueryRetrieveLevel} level"
        for status, answer in peer.responses(link, lambda: link.assoc.send_c_find(query, FIND_MODEL), what):
            if status in PENDING and answer is not None:
                answers.append(answer)
            elif status not in PENDING and status != 0x0000:
                raise DimseFailed(f"{peer.url} failed the {what}: status 0x{status:04X}"
                                  f"{_status_hint(status)}", peer.url, status)
    except BaseException:
        peer.abort(link)
        raise
    peer.release(link)
    logger.debug("%s C-FIND %s: %d answers in %.3f s", peer.url, query.QueryRetrieveLevel, len(answers),
                 time.monotonic() - started)
    return answers


def _status_hint(status: int) -> str:
    if status == 0xA700:
        return " (out of resources)"
    if status == 0xA900:
        return " (the identifier does not match the SOP class)"
    if 0xC000 <= status <= 0xCFFF:
        return " (unable to process: e.g. a return key the peer cannot answer)"
    return ""


def _require_study(peer: Peer, study_uid: str) -> None:
    """An empty answer for an unknown study is a NotFound, as over DICOMweb."""
    found = find_datasets(peer, identifier("STUDY", [], {"StudyInstanceUID": study_uid}, ()))
    if not found:
        raise NotFound(f"study {study_uid} not found on {peer.url}", peer.url, None)
