"""QIDO filters: parsed and validated from user input, and turned into what a server can match.

The value sent to the server is made safe for every server we know: characters Orthanc 1.10
cannot match (space and URL delimiters, which it does not percent-decode; non-ASCII; and the PN
separator `^`, which it never matches, raw or encoded) become the single-character wildcard `?`. The server then returns a superset, and `matching.py` applies the
exact filter on the client, which is also how servers that ignore filters are handled.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Tuple, Union

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

WILDCARD_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}
# Sent as they are; anything else in a wildcard-capable value is replaced by `?` on the wire.
WIRE_SAFE = re.compile(r"[A-Za-z0-9*?.,\-_]")
DATE = r"\d{8}"
TIME = r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?"
UID = r"[0-9]+(?:\.[0-9]+)*"
# Keys a user may give that are not attributes (paging and result shaping are separate options).
RESERVED = {"limit", "offset", "includefield", "fuzzymatching"}


@dataclass(frozen=True)
class Filter:
    """One matching key: attribute keyword, its tag as 8 hex digits, its VR, and the value."""

    keyword: str
    tag: str
    vr: str
    value: str

    @property
    def wire_value(self) -> str:
        if self.vr not in WILDCARD_VRS:
            return self.value
        return "".join(ch if WIRE_SAFE.match(ch) else "?" for ch in self.value)

    @property
    def is_universal(self) -> bool:
        """Empty or `*` matches everything (DICOM universal matching)."""
        return self.value in ("", "*")


def attribute(key: str) -> Tuple[str, str, str]:
    """(keyword, tag hex, VR) for a keyword (`PatientName`) or a tag (`00100010`, `0010,0010`)."""
    text = key.strip()
    compact = text.replace(",", "").replace("(", "").replace(")", "")
    if re.fullmatch(r"[0-9A-Fa-f]{8}", compact):
        tag = int(compact, 16)
        keyword = keyword_for_tag(tag)
    else:
        found = tag_for_keyword(text)
        if found is None:
            raise ValueError(f"unknown DICOM attribute {key!r} (use a keyword like PatientName or a tag like 00100010)")
        tag, keyword = found, text
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        raise ValueError(f"unknown DICOM attribute {key!r}") from None
    return keyword or f"{tag:08X}", f"{tag:08X}", vr


def make_filter(key: str, value: str) -> Filter:
    """A validated filter; ValueError names the attribute and what is wrong with the value."""
    if key.strip().lower() in RESERVED:
        raise ValueError(f"{key!r} is not a filter: use the limit/includefield options")
    keyword, tag, vr = attribute(key)
    value = value.strip()
    if vr == "SQ":
        raise ValueError(f"{keyword} is a sequence: it cannot be used as a filter")
    if value and value != "*":
        _validate(keyword, vr, value)
    return Filter(keyword, tag, vr, value)


def check_single_uid(keyword: str, uid: str) -> None:
    """ValueError naming the attribute unless `uid` is exactly one UID (it goes into a URL path)."""
    make_filter(keyword, uid)
    if "," in uid or "\\" in uid:
        raise ValueError(f"{keyword} must be one UID here, not a list")


def parse_filters(filters: Union[None, Mapping[str, str], Iterable[str]]) -> List[Filter]:
    """Filters from a mapping or from `KEY=VALUE` strings (the command line form)."""
    if not filters:
        return []
    pairs: List[Tuple[str, str]] = []
    if isinstance(filters, Mapping):
        pairs = [(str(k), "" if v is None else str(v)) for k, v in filters.items()]
    else:
        for item in filters:
            if "=" not in item:
                raise ValueError(f"filter {item!r} must be KEY=VALUE, e.g. PatientName=DOE^J*")
            key, value = item.split("=", 1)
            pairs.append((key, value))
    parsed = [make_filter(key, value) for key, value in pairs]
    seen = set()
    for flt in parsed:
        if flt.tag in seen:
            raise ValueError(f"{flt.keyword} is given twice")
        seen.add(flt.tag)
    return parsed


def _validate(keyword: str, vr: str, value: str) -> None:
    if vr == "DA":
        _range(keyword, value, DATE, "a date YYYYMMDD or a range like 20240101-20241231, 20240101- or -20241231")
        for part in value.split("-"):
            if part and not (1 <= int(part[4:6]) <= 12 and 1 <= int(part[6:8]) <= 31):
                raise ValueError(f"{keyword}={value!r}: {part} is not a valid date")
    elif vr == "TM":
        _range(keyword, value, TIME, "a time HHMMSS or a range like 0800-1200")
    elif vr == "DT":
        _range(keyword, value, r"\d{4,14}(?:\.\d{1,6})?(?:[+-]\d{4})?", "a date-time or a range of them")
    elif vr == "UI":
        if not re.fullmatch(rf"{UID}(?:[\\,]{UID})*", value) or any(len(u) > 64 for u in re.split(r"[\\,]", value)):
            raise ValueError(f"{keyword}={value!r} is not a UID (or a list of UIDs separated by commas)")
    elif vr in ("IS", "SS", "US", "SL", "UL", "UV", "SV"):
        if not re.fullmatch(r"[+-]?\d+", value):
            raise ValueError(f"{keyword}={value!r} is not an integer")
    elif vr in ("DS", "FL", "FD"):
        try:
            float(value)
        except ValueError:
            raise ValueError(f"{keyword}={value!r} is not a number") from None
    elif vr not in WILDCARD_VRS and any(ch in value for ch in "*?"):
        raise ValueError(f"{keyword} ({vr}) does not support wildcards")


def _range(keyword: str, value: str, single: str, expected: str) -> None:
    if not re.fullmatch(rf"(?:{single})?-?(?:{single})?", value) or value == "-":
        raise ValueError(f"{keyword}={value!r}: expected {expected}")
    if value.count("-") == 1 and all(value.split("-")):
        low, high = value.split("-")
        if low > high:
            raise ValueError(f"{keyword}={value!r}: the range starts after it ends")
