"""One cache entry: what it is keyed on, and its on-disk form, checked on every read.

Names on disk are the sha256 of the key, never a UID: UIDs come from the server and are
untrusted, so no path traversal or odd character can reach the file system. The UIDs are
validated anyway (digits and dots), and the server part is the redacted base URL, so no
credential ever enters a key or a file.

File layout: MAGIC, a 4-byte big-endian header length, a UTF-8 JSON header (the key, the data's
length and sha256, how the server labelled the bytes), then the frame bytes. A file that does not
parse, names another key, or whose length or digest differs is corrupt: the store drops it.
"""
from __future__ import annotations

import hashlib
import json
import re
import struct
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

from ..dicomweb.frames import FrameData
from ..dicomweb.urls import redact_url

MAGIC = b"PDF-FRAME-CACHE 1\n"
MAX_HEADER = 64 * 1024
UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*\Z")
MAX_UID = 128  # the standard says 64; some vendors exceed it, none by this much


def check_uid(what: str, uid: str) -> str:
    """`uid` when it is digits and dots (at most MAX_UID characters); ValueError naming it otherwise."""
    if not isinstance(uid, str) or len(uid) > MAX_UID or not UID_PATTERN.match(uid):
        shown = repr(uid)[:80]
        raise ValueError(f"{what} {shown} is not a UID (digits and dots, at most {MAX_UID} characters): not cached")
    return uid


class CorruptEntry(ValueError):
    """A cache file that cannot be trusted (truncated, altered, or for another key)."""


@dataclass(frozen=True)
class FrameKey:
    """A frame of an instance on a server. `transfer_syntax` is the stored syntax the metadata gave
    ("" if unknown): a server that re-encodes an instance gets new keys instead of stale frames."""

    server: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    frame_number: int
    transfer_syntax: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "server", redact_url(self.server).rstrip("/"))
        check_uid("StudyInstanceUID", self.study_uid)
        check_uid("SeriesInstanceUID", self.series_uid)
        check_uid("SOPInstanceUID", self.sop_instance_uid)
        if self.transfer_syntax:
            check_uid("TransferSyntaxUID", self.transfer_syntax)
        if not isinstance(self.frame_number, int) or self.frame_number < 1:
            raise ValueError(f"frame number {self.frame_number!r} must be a positive integer")

    def digest(self) -> str:
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def encode_entry(key: FrameKey, frame: FrameData) -> bytes:
    header = {"key": asdict(key), "length": len(frame.data), "sha256": hashlib.sha256(frame.data).hexdigest(),
              "transfer_syntax_uid": frame.transfer_syntax_uid, "content_type": frame.content_type}
    encoded = json.dumps(header, sort_keys=True).encode("utf-8")
    return MAGIC + struct.pack(">I", len(encoded)) + encoded + frame.data


def decode_entry(blob: bytes, key: Optional[FrameKey] = None) -> Tuple[FrameKey, FrameData]:
    """The key and frame of an entry file; CorruptEntry unless every check passes."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 4:
        raise CorruptEntry("not a cache entry (bad magic)")
    start = len(MAGIC) + 4
    (size,) = struct.unpack(">I", blob[len(MAGIC):start])
    if size > MAX_HEADER or start + size > len(blob):
        raise CorruptEntry("header length out of range (truncated?)")
    try:
        header = json.loads(blob[start:start + size].decode("utf-8"))
        found = FrameKey(**header["key"])
        length, digest = int(header["length"]), str(header["sha256"])
        syntax, content_type = header.get("transfer_syntax_uid"), str(header.get("content_type") or "")
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptEntry(f"unreadable header ({error})") from None
    if key is not None and found != key:
        raise CorruptEntry("the entry belongs to another key")
    data = blob[start + size:]
    if len(data) != length:
        raise CorruptEntry(f"{len(data)} bytes of data, the header says {length} (truncated?)")
    if hashlib.sha256(data).hexdigest() != digest:
        raise CorruptEntry("the data's sha256 differs from the header's")
    return found, FrameData(found.frame_number, data, syntax if isinstance(syntax, str) else None, content_type)
