"""Byte ranges of one frame resource: the transport of HTJ2K prefix previews.

A prefix is asked with `Range: bytes=0-N`; the rest later with `Range: bytes=N+1-` and `If-Range`
carrying the prefix's validator, so the two halves are of the same object or the server sends the
whole (200) instead: never a spliced frame. Support is never assumed: only a 206 whose
Content-Range fits the request counts; Orthanc 1.10 answers 200 with the whole body.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Optional

import requests

from .errors import BadResponse
from .frames import PIXEL_HEADERS
from .server import DicomwebServer, RetryPolicy

logger = logging.getLogger(__name__)

CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+)\s*\Z")


@dataclass(frozen=True)
class RangeAnswer:
    """Bytes `start`.. of the resource (`total` long when known); `partial` False: the whole body."""

    data: bytes
    content_type: str
    start: int
    total: Optional[int]
    validator: Optional[str]
    partial: bool

    @property
    def end(self) -> int:
        """One past the last byte received."""
        return self.start + len(self.data)

    @property
    def whole(self) -> bool:
        """The answer holds the resource to its end."""
        return self.total is not None and self.end == self.total


def content_range(value: Optional[str]) -> Optional[tuple]:
    """`bytes 10-99/100` -> (10, 99, 100); None when absent or not of that form."""
    match = CONTENT_RANGE.match((value or "").strip())
    return None if match is None else tuple(int(g) for g in match.groups())


def validator_of(response: requests.Response) -> Optional[str]:
    """A validator If-Range may carry: a strong ETag (weak ones are not allowed), else Last-Modified."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


def get_range(server: DicomwebServer, path: str, accept: str, start: int, end: Optional[int] = None,
              validator: Optional[str] = None, retry: Optional[RetryPolicy] = None) -> RangeAnswer:
    """GET bytes start..end (inclusive; None: to the end). A 206 must answer exactly what was asked
    (or less at the end of the resource), else BadResponse; a 200 is the whole resource."""
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"byte range {start}-{end} is not a range")
    headers = dict(PIXEL_HEADERS, Range=f"bytes={start}-{'' if end is None else end}")
    if validator:
        headers["If-Range"] = validator
    response = server.get(path, accept=accept, headers=headers, retry=retry, max_bytes=server.limits.frame_bytes)
    where = server.url_for(path)
    content_type = response.headers.get("Content-Type", "")
    data = response.content
    if response.status_code != 206:
        return RangeAnswer(data, content_type, 0, len(data), validator_of(response), partial=False)
    found = content_range(response.headers.get("Content-Range"))
    if found is None:
        raise BadResponse(f"{where}: 206 without a usable Content-Range", where, 206)
    first, last, total = found
    short_at_end = last == total - 1 and (end is None or end >= last)
    if first != start or last - first + 1 != len(data) or (end is not None and last != end and not short_at_end):
        raise BadResponse(f"{where}: asked bytes {start}-{'' if end is None else end}, got {first}-{last}/{total} "
                          f"with {len(data)} bytes", where, 206)
    return RangeAnswer(data, content_type, first, total, validator_of(response) or validator, partial=True)
