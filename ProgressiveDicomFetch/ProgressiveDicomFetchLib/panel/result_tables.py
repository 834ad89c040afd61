"""The studies and series tables: the columns a PACS user expects, as text cells.

The values come from the QIDO-RS answers (`search_studies` / `search_series` ask for them with
includefield), so the tables fill without further requests. A cell is empty when the server did
not send the attribute. Series of non-image modalities (SR, SEG, KO, ...) are listed but cannot
be loaded as volumes; `is_loadable` says why.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

from ..dicomweb.records import SeriesRecord, StudyRecord
from ..geometry.series_geometry import NON_IMAGE_MODALITIES


def _date(value: Optional[datetime.date]) -> str:
    return value.isoformat() if value else ""


def _time(value: Optional[datetime.time]) -> str:
    return value.strftime("%H:%M") if value else ""


def _number(value: Optional[int]) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Column:
    """One table column: its header and how a record becomes the cell text."""

    title: str
    cell: Callable[[Any], str]


STUDY_COLUMNS: Tuple[Column, ...] = (
    Column("Patient name", lambda r: r.display_name),
    Column("Patient ID", lambda r: r.patient_id),
    Column("Birth date", lambda r: _date(r.patient_birth_date)),
    Column("Sex", lambda r: r.patient_sex),
    Column("Study date", lambda r: " ".join(filter(None, (_date(r.study_date), _time(r.study_time))))),
    Column("Modalities", lambda r: ", ".join(r.modalities)),
    Column("Description", lambda r: r.study_description),
    Column("Accession", lambda r: r.accession_number),
    Column("Series", lambda r: _number(r.number_of_series)),
    Column("Instances", lambda r: _number(r.number_of_instances)),
)

# What a series of each modality loads as (before its metadata is read; the node says it exactly).
KIND_BY_MODALITY = {"CT": "volume", "MR": "volume", "PT": "volume", "NM": "volume or frames",
                    "CR": "image", "DX": "image", "MG": "image", "IO": "image", "PX": "image", "RG": "image",
                    "US": "image or cine (colour)", "XA": "image or cine", "RF": "image or cine",
                    "ES": "image or cine (colour)", "RTDOSE": "dose"}


def series_kind(record: SeriesRecord) -> str:
    """What the series is, for the table: volume, image, cine, dose; why not, for non-image series."""
    modality = record.modality.upper()
    if modality in NON_IMAGE_MODALITIES:
        return f"not an image ({modality})"
    return KIND_BY_MODALITY.get(modality, "image or volume")


SERIES_COLUMNS: Tuple[Column, ...] = (
    Column("Number", lambda r: _number(r.series_number)),
    Column("Modality", lambda r: r.modality),
    Column("Description", lambda r: r.series_description),
    Column("Body part", lambda r: r.body_part),
    Column("Date", lambda r: " ".join(filter(None, (_date(r.series_date), _time(r.series_time))))),
    Column("Instances", lambda r: _number(r.number_of_instances)),
    Column("Kind", series_kind),
)


def table_rows(records: Iterable[Any], columns: Sequence[Column]) -> List[List[str]]:
    """One list of cell texts per record, in the columns' order."""
    return [[column.cell(record) for column in columns] for record in records]


def is_loadable(record: SeriesRecord) -> Tuple[bool, str]:
    """(True, "") for a series that may hold images; (False, why) for one that cannot be a volume."""
    if record.modality.upper() in NON_IMAGE_MODALITIES:
        return False, f"{record.modality} series hold no images to load as a volume"
    if record.number_of_instances == 0:
        return False, "the series has no instances"
    return True, ""


def default_order(records: Iterable[StudyRecord]) -> List[StudyRecord]:
    """Newest study first, as PACS worklists show them (undated ones last)."""
    return sorted(records, key=lambda r: (r.study_date is not None, r.study_date or datetime.date.min,
                                          r.study_time or datetime.time.min), reverse=True)
