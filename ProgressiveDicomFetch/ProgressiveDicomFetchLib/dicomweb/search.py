"""QIDO-RS search at study, series and instance level, correct on full and static servers alike.

- Paging never loops forever: it stops on an empty page, on a page with nothing new (the server
  ignores `offset`), when the server sent more than asked (it ignores `limit`), at the user's
  limit, or after `MAX_PAGES`.
- Every answer is checked against the filters on the client (`matching.py`): records a server
  should not have returned are dropped, and the result says which request parts it ignored.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Generic, Iterable, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar, Union

from .errors import NotFound
from .filters import Filter, attribute, check_single_uid, parse_filters
from .matching import matches
from .records import InstanceRecord, SeriesRecord, StudyRecord
from .server import DicomwebServer

logger = logging.getLogger(__name__)

R = TypeVar("R", StudyRecord, SeriesRecord, InstanceRecord)
Filters = Union[None, Mapping[str, str], Iterable[str]]
MAX_PAGES = 1000
DEFAULT_PAGE_SIZE = 100

# Columns a user expects in a study or series table (asked with includefield).
STUDY_FIELDS = ("StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
                "ReferringPhysicianName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyTime", "StudyID")
SERIES_FIELDS = ("SeriesDescription", "SeriesNumber", "Modality", "NumberOfSeriesRelatedInstances",
                 "BodyPartExamined", "SeriesDate", "SeriesTime", "StudyInstanceUID")
INSTANCE_FIELDS = ("InstanceNumber", "Rows", "Columns", "NumberOfFrames", "SOPClassUID",
                   "StudyInstanceUID", "SeriesInstanceUID")


@dataclass
class SearchResult(Generic[R]):
    """Records plus what the server did not honour (shown to the user, never silent)."""

    records: List[R]
    pages: int = 0
    ignored: Set[str] = field(default_factory=set)  # of "filters", "limit", "offset"
    unverified: List[str] = field(default_factory=list)  # filters the server's answer could not confirm
    truncated: bool = False
    dropped: int = 0  # records the server sent beyond the limit (DIMSE has no paging)

    def __iter__(self):
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def notes(self) -> List[str]:
        notes = []
        if "filters" in self.ignored:
            notes.append("the server ignored some filters: they were applied here")
        if self.ignored & {"limit", "offset"}:
            notes.append("the server ignored paging (limit/offset): paged here")
        for keyword in self.unverified:
            notes.append(f"the server does not return {keyword}: that filter could not be checked here")
        if self.dropped:
            notes.append(f"{self.dropped} results beyond the limit were dropped (DIMSE has no paging)")
        elif self.truncated:
            notes.append("more results exist than the limit")
        return notes


def search_studies(server: DicomwebServer, filters: Filters = None, *, limit: Optional[int] = None,
                   includefield: Sequence[str] = STUDY_FIELDS, page_size: int = DEFAULT_PAGE_SIZE
                   ) -> SearchResult[StudyRecord]:
    """Studies matching the filters (PatientName, PatientID, StudyDate ranges, ModalitiesInStudy, ...)."""
    return _search(server, "studies", StudyRecord, "0020000D", parse_filters(filters), limit, includefield, page_size)


def search_series(server: DicomwebServer, study_uid: Optional[str] = None, filters: Filters = None, *,
                  limit: Optional[int] = None, includefield: Sequence[str] = SERIES_FIELDS,
                  page_size: int = DEFAULT_PAGE_SIZE) -> SearchResult[SeriesRecord]:
    """Series of one study (or of all studies when `study_uid` is None)."""
    parsed = parse_filters(filters)
    if study_uid is None:
        return _search(server, "series", SeriesRecord, "0020000E", parsed, limit, includefield, page_size)
    check_single_uid("StudyInstanceUID", study_uid)
    result = _search(server, f"studies/{study_uid}/series", SeriesRecord, "0020000E", parsed, limit,
                     includefield, page_size)
    if not result.records:
        _require_study(server, study_uid)
    return result


def search_instances(server: DicomwebServer, study_uid: str, series_uid: Optional[str] = None,
                     filters: Filters = None, *, limit: Optional[int] = None,
                     includefield: Sequence[str] = INSTANCE_FIELDS, page_size: int = DEFAULT_PAGE_SIZE
                     ) -> SearchResult[InstanceRecord]:
    """Instances of a study, or of one of its series."""
    check_single_uid("StudyInstanceUID", study_uid)
    path = f"studies/{study_uid}/instances"
    if series_uid is not None:
        check_single_uid("SeriesInstanceUID", series_uid)
        path = f"studies/{study_uid}/series/{series_uid}/instances"
    result = _search(server, path, InstanceRecord, "00080018", parse_filters(filters), limit, includefield, page_size)
    if not result.records:
        _require_study(server, study_uid)
    return result


def _search(server: DicomwebServer, path: str, record_type: Any, uid_tag: str, filters: List[Filter],
            limit: Optional[int], includefield: Sequence[str], page_size: int) -> SearchResult:
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number, not {limit}")
    if page_size < 1:
        raise ValueError(f"page size must be a positive number, not {page_size}")
    base_params: List[Tuple[str, str]] = [(f.tag, f.wire_value) for f in filters if not f.is_universal]
    base_params += [("includefield", attribute(name)[1]) for name in includefield]
    result: SearchResult = SearchResult(records=[])
    seen: Set[str] = set()
    kept: List[Dict[str, Any]] = []
    offset = 0
    while result.pages < MAX_PAGES:
        wanted = page_size if limit is None else min(page_size, limit - len(kept) + 1)
        page = server.get_json(path, base_params + [("limit", str(wanted)), ("offset", str(offset))])
        result.pages += 1
        if not page:
            break
        fresh = [ds for ds in page if _uid(ds, uid_tag) not in seen]
        if not fresh:
            result.ignored.add("offset")
            break
        seen.update(_uid(ds, uid_tag) for ds in fresh)
        kept += keep_matching(fresh, filters, result)
        offset += len(page)
        if len(page) > wanted:
            result.ignored.add("limit")
            break
        if limit is not None and len(kept) > limit:
            break
    else:
        logger.warning("GET %s: stopped after %d pages", server.url_for(path), MAX_PAGES)
        result.truncated = True
    if limit is not None and len(kept) > limit:
        kept, result.truncated = kept[:limit], True
    result.records = [record_type.from_json(ds) for ds in kept]
    for note in result.notes():
        logger.info("%s: %s", server.url_for(path), note)
    return result


def keep_matching(page: List[Dict[str, Any]], filters: List[Filter], result: SearchResult) -> List[Dict[str, Any]]:
    """The records that really match; a contradicting record means the server ignored a filter."""
    kept = []
    for ds in page:
        outcomes = [(flt, matches(ds, flt)) for flt in filters]
        if any(outcome is False for _, outcome in outcomes):
            result.ignored.add("filters")
            continue
        for flt, outcome in outcomes:
            if outcome is None and flt.keyword not in result.unverified:
                result.unverified.append(flt.keyword)
        kept.append(ds)
    return kept


def _uid(ds: Dict[str, Any], tag: str) -> str:
    value = ds.get(tag, {}).get("Value", [""])
    return str(value[0]) if value else ""


def _require_study(server: DicomwebServer, study_uid: str) -> None:
    """Orthanc answers `[]` for an unknown study where others say 404: make both a NotFound."""
    found = search_studies(server, {"StudyInstanceUID": study_uid}, includefield=())
    if not found.records:
        url = server.url_for(f"studies/{study_uid}")
        raise NotFound(f"study {study_uid} not found on {server.url}", url, 404)
