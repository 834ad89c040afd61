"""Typed search results: QIDO's DICOM JSON turned into records a table or a script can use.

Patient names keep their DICOM form (`DOE^JOHN`, `display_name` gives "DOE, JOHN"); dates are
`datetime.date`, times `datetime.time`, counts `int`; the full JSON stays in `attributes`.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar

from .matching import values

T = TypeVar("T")


def text(dataset: Dict[str, Any], tag: str) -> str:
    found = values(dataset, tag)
    return "\\".join(str(v) for v in found) if found else ""


def first(dataset: Dict[str, Any], tag: str) -> Optional[Any]:
    found = values(dataset, tag)
    return found[0] if found else None


def integer(dataset: Dict[str, Any], tag: str) -> Optional[int]:
    value = first(dataset, tag)
    try:
        return None if value is None else int(float(value))
    except (TypeError, ValueError):
        return None


def date_value(dataset: Dict[str, Any], tag: str) -> Optional[datetime.date]:
    value = str(first(dataset, tag) or "").replace(".", "").replace("-", "")
    try:
        return datetime.datetime.strptime(value[:8], "%Y%m%d").date() if len(value) >= 8 else None
    except ValueError:
        return None


def time_value(dataset: Dict[str, Any], tag: str) -> Optional[datetime.time]:
    raw = str(first(dataset, tag) or "").replace(":", "")
    main, _, fraction = raw.partition(".")
    if not main.isdigit() or len(main) not in (2, 4, 6):
        return None
    parts = [int(main[i:i + 2]) for i in range(0, len(main), 2)] + [0, 0]
    micro = int(fraction[:6].ljust(6, "0")) if fraction.isdigit() else 0
    try:
        return datetime.time(parts[0], parts[1], parts[2], micro)
    except ValueError:
        return None


def display_name(dicom_name: str) -> str:
    """`DOE^JOHN^^DR` -> `DOE, JOHN, DR` (components, empty ones dropped)."""
    return ", ".join(part for part in dicom_name.split("^") if part)


@dataclass(frozen=True)
class StudyRecord:
    study_uid: str
    patient_name: str
    patient_id: str
    patient_birth_date: Optional[datetime.date]
    patient_sex: str
    study_date: Optional[datetime.date]
    study_time: Optional[datetime.time]
    accession_number: str
    study_id: str
    study_description: str
    modalities: Tuple[str, ...]
    referring_physician: str
    number_of_series: Optional[int]
    number_of_instances: Optional[int]
    attributes: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, ds: Dict[str, Any]) -> "StudyRecord":
        return cls(
            study_uid=text(ds, "0020000D"), patient_name=text(ds, "00100010"), patient_id=text(ds, "00100020"),
            patient_birth_date=date_value(ds, "00100030"), patient_sex=text(ds, "00100040"),
            study_date=date_value(ds, "00080020"), study_time=time_value(ds, "00080030"),
            accession_number=text(ds, "00080050"), study_id=text(ds, "00200010"),
            study_description=text(ds, "00081030"), modalities=tuple(str(v) for v in values(ds, "00080061") or ()),
            referring_physician=text(ds, "00080090"), number_of_series=integer(ds, "00201206"),
            number_of_instances=integer(ds, "00201208"), attributes=ds,
        )

    @property
    def uid(self) -> str:
        return self.study_uid

    @property
    def display_name(self) -> str:
        return display_name(self.patient_name)


@dataclass(frozen=True)
class SeriesRecord:
    study_uid: str
    series_uid: str
    modality: str
    series_number: Optional[int]
    series_description: str
    body_part: str
    series_date: Optional[datetime.date]
    series_time: Optional[datetime.time]
    number_of_instances: Optional[int]
    attributes: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, ds: Dict[str, Any]) -> "SeriesRecord":
        return cls(
            study_uid=text(ds, "0020000D"), series_uid=text(ds, "0020000E"), modality=text(ds, "00080060"),
            series_number=integer(ds, "00200011"), series_description=text(ds, "0008103E"),
            body_part=text(ds, "00180015"), series_date=date_value(ds, "00080021"),
            series_time=time_value(ds, "00080031"), number_of_instances=integer(ds, "00201209"), attributes=ds,
        )

    @property
    def uid(self) -> str:
        return self.series_uid


@dataclass(frozen=True)
class InstanceRecord:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: Optional[int]
    rows: Optional[int]
    columns: Optional[int]
    number_of_frames: Optional[int]
    attributes: Dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, ds: Dict[str, Any]) -> "InstanceRecord":
        return cls(
            study_uid=text(ds, "0020000D"), series_uid=text(ds, "0020000E"), sop_instance_uid=text(ds, "00080018"),
            sop_class_uid=text(ds, "00080016"), instance_number=integer(ds, "00200013"), rows=integer(ds, "00280010"),
            columns=integer(ds, "00280011"), number_of_frames=integer(ds, "00280008"), attributes=ds,
        )

    @property
    def uid(self) -> str:
        return self.sop_instance_uid


def sort_records(records: Iterable[T], *keys: str, descending: bool = False) -> List[T]:
    """Sorted by the named fields in turn; records missing a value go last either way."""
    result = list(records)
    for key in reversed(keys):
        present = [r for r in result if getattr(r, key) not in (None, "")]
        absent = [r for r in result if getattr(r, key) in (None, "")]
        result = sorted(present, key=lambda r: getattr(r, key), reverse=descending) + absent
    return result


def record_fields(record_type: type) -> Sequence[str]:
    return [f.name for f in fields(record_type) if f.name != "attributes"]


def as_plain_dict(record: Any, convert: Callable[[Any], Any] = lambda v: v) -> Dict[str, Any]:
    """The record's fields (not the raw JSON) with dates/times as ISO strings, for JSON output."""
    out = {}
    for name in record_fields(type(record)):
        value = getattr(record, name)
        if isinstance(value, (datetime.date, datetime.time)):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = convert(value)
    return out
