"""DICOM attribute matching (PS3.4 C.2.2.2) applied on the client to DICOM JSON results.

Used on every answer: it makes results exact where the server matched loosely (Orthanc's `?`
for spaces) or not at all (static DICOMweb trees ignore every filter).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Dict, List, Optional

from .filters import Filter

PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def values(dataset: Dict[str, Any], tag: str) -> Optional[List[Any]]:
    """The element's values as strings/numbers (PN as its alphabetic form); None if absent."""
    element = dataset.get(tag)
    if element is None:
        return None
    raw = element.get("Value", [])
    if element.get("vr") == "PN":
        return [g for item in raw if isinstance(item, dict) for g in (item.get(k) for k in PN_GROUPS) if g]
    return [v for v in raw if v is not None]


def matches(dataset: Dict[str, Any], flt: Filter) -> Optional[bool]:
    """True/False, or None when the dataset does not carry the attribute (cannot be checked)."""
    if flt.is_universal:
        return True
    found = values(dataset, flt.tag)
    if found is None:
        return None
    if not found:
        return False
    return any(_match_one(flt, value) for value in found)


def _match_one(flt: Filter, value: Any) -> bool:
    vr, wanted = flt.vr, flt.value
    if vr == "UI":
        return str(value) in re.split(r"[\\,]", wanted)
    if vr == "DA":
        return _in_range(str(value), wanted, lambda s, upper: s)
    if vr == "TM":
        return _in_range(str(value), wanted, _time_key)
    if vr == "DT":
        return _in_range(str(value), wanted, lambda s, upper: s.ljust(14, "9" if upper else "0"))
    if vr in ("IS", "SS", "US", "SL", "UL", "UV", "SV", "DS", "FL", "FD"):
        try:
            return float(value) == float(wanted)
        except (TypeError, ValueError):
            return False
    return _wildcard(wanted, vr == "PN").fullmatch(str(value).strip()) is not None


@lru_cache(maxsize=256)
def _wildcard(pattern: str, ignore_case: bool) -> "re.Pattern[str]":
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(regex, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _time_key(text: str, upper: bool) -> str:
    """HHMMSS.ffffff, missing parts filled with their lowest (or, for an upper bound, highest) value."""
    text = text.replace(":", "")
    main, _, fraction = text.partition(".")
    fill = "235959" if upper else "000000"
    main = main + fill[len(main):]
    return f"{main}.{fraction.ljust(6, '9' if upper and not fraction else '0')}"


def _in_range(value: str, wanted: str, key) -> bool:
    if "-" not in wanted:
        return key(value, False) == key(wanted, False)
    low, high = wanted.split("-", 1)
    if low and key(value, False) < key(low, False):
        return False
    if high and key(value, False) > key(high, True):
        return False
    return True
