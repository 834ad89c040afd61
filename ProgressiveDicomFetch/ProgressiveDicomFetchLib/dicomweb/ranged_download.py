"""Download one large body so that an interruption costs only the bytes not yet received.

The body goes to a partial file as it arrives; a sidecar JSON keeps the resource path, the
validator (a strong ETag, else Last-Modified) and the total length. After a dropped connection,
a cancel or a killed process, the next call asks `Range: bytes=N-` with `If-Range: <validator>`:
- 206 with `Content-Range: bytes N-.../total` -> append (the object is unchanged);
- 200 -> the object changed or Range is not supported: start over with this body;
- 416 -> the partial does not fit the object any more: start over.
Support is detected from `Accept-Ranges: bytes` plus a validator, never assumed: without them
(Orthanc 1.10) a partial is useless and the whole object is fetched again. The result is checked
against the announced length and by the caller's `verify` (e.g. a decode) before it is returned.

The engine fetches one frame (or 8 frames of a multi-frame object) per request, so its loads
resume at frame granularity through the frame cache; this module is for single large bodies
(whole instances, big multi-frame batches, bulk data), where one object can be many megabytes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

import requests

from ..files import atomic_write
from .errors import BadResponse, ServerUnreachable
from .server import DicomwebServer

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+)\s*\Z")
INTERRUPTIONS = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                 requests.exceptions.Timeout, ConnectionError)


class DownloadCancelled(Exception):
    """The caller's cancel event was set; the partial file is kept for a later resume."""


@dataclass
class PartialState:
    """The sidecar of a partial file: enough to ask for the rest of the same object."""

    path: str
    validator: Optional[str]
    total: Optional[int]
    content_type: str
    resumable: bool


@dataclass(frozen=True)
class DownloadResult:
    data: bytes
    content_type: str
    received: int  # body bytes this call received, over all its requests
    resumed_from: int  # bytes already on disk when the successful request started (0: from scratch)
    requests: int


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


class _Partial:
    """A partial file and its sidecar."""

    def __init__(self, file: Path) -> None:
        self.file = Path(file)
        self.sidecar = self.file.with_name(self.file.name + ".json")

    def load(self, path: str) -> Optional[PartialState]:
        try:
            state = PartialState(**json.loads(self.sidecar.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None
        return state if state.path == path and self.file.exists() else None

    def save(self, state: PartialState) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.sidecar, text=True) as handle:
            json.dump(asdict(state), handle)

    def size(self) -> int:
        try:
            return self.file.stat().st_size
        except OSError:
            return 0

    def discard(self) -> None:
        for path in (self.file, self.sidecar):
            with contextlib.suppress(OSError):
                path.unlink()


def download_resumable(server: DicomwebServer, path: str, partial_file: Path, accept: str = "*/*",
                       headers: Optional[Mapping[str, str]] = None, attempts: int = 3,
                       cancel: Optional[threading.Event] = None, on_bytes: Optional[Callable[[int], None]] = None,
                       verify: Optional[Callable[[bytes, str], None]] = None,
                       chunk_size: int = CHUNK) -> DownloadResult:
    """The body of GET `path`, continuing what `partial_file` holds from an earlier try.

    Interruptions within the call are resumed up to `attempts` requests. `cancel` stops between
    chunks (DownloadCancelled, the partial kept); `on_bytes(n)` sees the running count of bytes
    received; `verify(data, content_type)` raises ValueError on a bad result, which is then dropped.
    """
    partial = _Partial(partial_file)
    state = partial.load(path)
    received = 0
    where = server.url_for(path)
    for request in range(1, attempts + 1):
        have = partial.size() if state is not None and state.resumable else 0
        if not have:
            partial.discard()
            state = None
        request_headers = {"Accept-Encoding": "identity"}
        request_headers.update(headers or {})
        if have:
            request_headers.update({"Range": f"bytes={have}-", "If-Range": str(state.validator)})
        try:
            response = server.get(path, accept=accept, headers=request_headers, stream=True)
        except BadResponse as error:
            if error.status == 416 and have:
                logger.info("%s: 416 for bytes %d-: the partial no longer fits, starting over", where, have)
                state = None
                partial.discard()
                continue
            raise
        try:
            if response.status_code == 206 and have:
                span = content_range(response.headers.get("Content-Range"))
                if span is None or span[0] != have or (state.total is not None and span[2] != state.total):
                    logger.info("%s: unexpected Content-Range %r, starting over", where,
                                response.headers.get("Content-Range"))
                    state = None
                    partial.discard()
                    continue
                mode = "ab"
                logger.info("%s: resuming at byte %d of %d", where, have, span[2])
            elif response.status_code == 206:
                raise BadResponse(f"GET {where}: 206 Partial Content to a request without Range", where, 206)
            else:
                if have:
                    logger.info("%s: HTTP %d to a Range request (changed, or no Range support): starting over",
                                where, response.status_code)
                state = _state_from(path, response)
                partial.save(state)
                have, mode = 0, "wb"
            received += _stream(response, partial.file, mode, cancel, on_bytes, received, chunk_size)
        except INTERRUPTIONS as error:
            logger.info("%s: interrupted after %d bytes (%s)", where, partial.size(), type(error).__name__)
            continue
        finally:
            response.close()
        size = partial.size()
        if state.total is not None and size != state.total:
            logger.info("%s: body ended at %d of %d bytes", where, size, state.total)
            continue
        data = partial.file.read_bytes()
        partial.discard()
        if verify is not None:
            try:
                verify(data, state.content_type)
            except ValueError as error:
                raise BadResponse(f"GET {where}: the downloaded body does not verify ({error})", where) from None
        return DownloadResult(data, state.content_type, received, have, request)
    kept = partial.size() if state is not None and state.resumable else 0
    if not kept:
        partial.discard()
    raise ServerUnreachable(f"GET {where}: interrupted {attempts} times; {kept} bytes kept for a resume", where)


def _state_from(path: str, response: requests.Response) -> PartialState:
    """What a full (200) answer says about resuming it later."""
    validator = validator_of(response)
    length = response.headers.get("Content-Length")
    identity = response.headers.get("Content-Encoding", "identity").lower() == "identity"
    total = int(length) if length and length.isdigit() and identity else None
    ranges = response.headers.get("Accept-Ranges", "").lower() == "bytes"
    return PartialState(path, validator, total, response.headers.get("Content-Type", ""),
                        resumable=bool(ranges and validator and total is not None))


def _stream(response: requests.Response, file: Path, mode: str, cancel: Optional[threading.Event],
            on_bytes: Optional[Callable[[int], None]], before: int, chunk_size: int) -> int:
    """Body chunks appended to `file` as they come (unbuffered: a kill loses nothing written)."""
    count = 0
    with open(str(file), mode, buffering=0) as handle:
        for chunk in response.iter_content(chunk_size):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled(f"cancelled after {before + count} bytes")
            handle.write(chunk)
            count += len(chunk)
            if on_bytes is not None:
                on_bytes(before + count)
    return count
