"""The panel's search form as QIDO-RS study filters.

A PACS user types the start of a name and expects matches: text without a wildcard becomes a
prefix match (`smith` -> `smith*`) for names and IDs, and a contains match for descriptions.
Descriptions match case-sensitively, as DICOM defines for LO values (names do not).
Dates come as presets relative to today, or as a range. Every filter is validated by
`dicomweb.filters.parse_filters`, so a bad value is reported before anything is sent.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..dicomweb.filters import parse_filters

ANY, TODAY, LAST_7_DAYS, LAST_30_DAYS, RANGE = "any", "today", "last 7 days", "last 30 days", "range"
DATE_PRESETS = (ANY, TODAY, LAST_7_DAYS, LAST_30_DAYS, RANGE)
_PRESET_DAYS = {TODAY: 0, LAST_7_DAYS: 6, LAST_30_DAYS: 29}  # today counts as one of the days
_MODALITY = re.compile(r"[A-Z0-9_]{1,16}")  # a code string (CS), e.g. CT, MR, PT


def _checked(label: str, text: str) -> str:
    text = text.strip()
    if any(ord(c) < 32 or c == "\\" for c in text):
        raise ValueError(f"{label} must not contain control characters or a backslash: {text!r}")
    return text


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _prefix(text: str) -> str:
    return text if _has_wildcard(text) else text + "*"


def _contains(text: str) -> str:
    return text if _has_wildcard(text) else f"*{text}*"


@dataclass
class SearchForm:
    """The fields of the panel's Search section (empty = no filter)."""

    patient_name: str = ""
    patient_id: str = ""
    accession_number: str = ""
    date_preset: str = ANY
    date_from: Optional[datetime.date] = None  # RANGE only; either end may be open
    date_to: Optional[datetime.date] = None
    modality: str = ""
    description: str = ""

    def date_range(self, today: Optional[datetime.date] = None) -> Tuple[Optional[datetime.date], Optional[datetime.date]]:
        """(first day, last day) of the study dates searched; (None, None) for any date."""
        if self.date_preset not in DATE_PRESETS:
            raise ValueError(f"unknown date preset {self.date_preset!r}: choose one of {', '.join(DATE_PRESETS)}")
        if self.date_preset == ANY:
            return None, None
        if self.date_preset == RANGE:
            if self.date_from and self.date_to and self.date_from > self.date_to:
                raise ValueError(f"the study date range starts ({self.date_from}) after it ends ({self.date_to})")
            return self.date_from, self.date_to
        today = today or datetime.date.today()
        return today - datetime.timedelta(days=_PRESET_DAYS[self.date_preset]), today

    def filters(self, today: Optional[datetime.date] = None) -> Dict[str, str]:
        """QIDO-RS study filters (attribute keyword -> value), validated."""
        values: Dict[str, str] = {}
        for keyword, text, match in (("PatientName", self.patient_name, _prefix), ("PatientID", self.patient_id, _prefix),
                                     ("AccessionNumber", self.accession_number, _prefix),
                                     ("StudyDescription", self.description, _contains)):
            text = _checked(keyword, text)
            if text:
                values[keyword] = match(text)
        modality = _checked("Modality", self.modality).upper()
        if modality:
            if not _MODALITY.fullmatch(modality):
                raise ValueError(f"Modality must be a code such as CT or MR, not {self.modality.strip()!r}")
            values["ModalitiesInStudy"] = modality
        first, last = self.date_range(today)
        if first or last:
            values["StudyDate"] = "-".join(d.strftime("%Y%m%d") if d else "" for d in (first, last))
            if first == last:
                values["StudyDate"] = first.strftime("%Y%m%d")  # type: ignore[union-attr]
        parse_filters(values)  # raises ValueError naming the bad field
        return values
