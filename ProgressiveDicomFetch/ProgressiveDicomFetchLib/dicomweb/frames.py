"""WADO-RS frame retrieval: Accept negotiation, multipart/related parsing, static-tree fallbacks.

What servers do (measured; see Testing/test_frames.py):
- Orthanc 1.10 answers `transfer-syntax=*` with the stored encoding for native, RLE, JPEG
  lossless, JPEG-LS and J2K, but with HTTP 500 for stored HTJ2K. Explicit VR little endian (or
  the default Accept) then brings the HTJ2K codestream *labelled* explicit little endian, which
  pixels.decode_frame recognises; J2K frames come only with `*` or `type="image/jp2"` (500
  otherwise); `*/*` gets 400. So: ask `*` first, fall back to explicit little endian on a refusal
  (400/406/415/500), and remember the outcome per server and series so the probe happens once.
- Static trees (nginx, S3) ignore Accept, serve one frame per file (so `frames/1,2` is 404:
  then frames are fetched one per request, remembered too) and label frames by media type only,
  sometimes as a multipart body whose boundary is only on the body's first line.
Pixel data is requested with `Accept-Encoding: identity`: Orthanc's gzip cuts frame throughput ~20x.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .. import transfer_syntax as ts
from .errors import BadResponse, NotFound
from .filters import check_single_uid
from .server import DicomwebServer, RetryPolicy
from .server_traits import FrameRoute, ServerTraits

logger = logging.getLogger(__name__)

ANY_SYNTAX = "*"
REFUSED_STATUSES = (400, 406, 415, 500)
PIXEL_HEADERS = {"Accept-Encoding": "identity"}
#: family (transfer_syntax.family) -> whether a decoder for it is installed. The codec layer sits
#: above this one, so the caller passes its answer in (pixels.can_decode); None: every family.
Decodable = Callable[[str], bool]


def _every_family(family: str) -> bool:
    return True


@dataclass(frozen=True)
class FrameData:
    """One frame as received: its bytes and how the server labelled them (labels may be wrong)."""

    frame_number: int
    data: bytes
    transfer_syntax_uid: Optional[str]
    content_type: str


@dataclass(frozen=True)
class BodyPart:
    content_type: str
    data: bytes


# -- media types and multipart ------------------------------------------------------------------
def split_media_type(value: Optional[str]) -> Tuple[str, Dict[str, str]]:
    """`'multipart/related; type="a/b; x=1"; boundary=q'` -> ('multipart/related', {'type': 'a/b; x=1', ...})."""
    if not value:
        return "", {}
    items: List[str] = []
    current, quoted = [], False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    params: Dict[str, str] = {}
    for item in items[1:]:
        key, sep, val = item.partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"')
    return items[0].strip().lower(), params


def syntax_of(content_type: Optional[str]) -> Optional[str]:
    """The transfer-syntax parameter of a media type, also inside a multipart `type` parameter."""
    _, params = split_media_type(content_type)
    if params.get("transfer-syntax"):
        return params["transfer-syntax"]
    inner = params.get("type")
    return split_media_type(inner)[1].get("transfer-syntax") if inner else None


def _first_line_boundary(body: bytes) -> Optional[bytes]:
    """The boundary from a body starting `--BOUNDARY\\r\\n` (static-wado frame files)."""
    start = body[:200].lstrip(b"\r\n")
    if not start.startswith(b"--"):
        return None
    line = start[2:].split(b"\n", 1)[0].rstrip(b"\r").strip()
    if not line or b" " in line or len(line) > 200:
        return None
    return line


def parse_multipart(body: bytes, content_type: Optional[str], where: str = "") -> List[BodyPart]:
    """The parts of a multipart/related body (RFC 2046): preamble and epilogue ignored, boundary
    from the Content-Type or else from the body's first line. BadResponse when it is malformed."""
    _, params = split_media_type(content_type)
    boundary = params["boundary"].encode("latin-1") if params.get("boundary") else _first_line_boundary(body)
    if not boundary:
        raise BadResponse(f"{where}: multipart body without a boundary", where)
    delimiter = b"--" + boundary
    default_type = params.get("type", ts.OCTET_STREAM)
    pos = body.find(delimiter)
    if pos < 0:
        raise BadResponse(f"{where}: the multipart boundary never occurs in the body", where)
    parts: List[BodyPart] = []
    while True:
        pos += len(delimiter)
        if body[pos:pos + 2] == b"--":
            return parts
        header_end = body.find(b"\r\n\r\n", pos)
        separator = 4
        if header_end < 0:
            header_end, separator = body.find(b"\n\n", pos), 2
        if header_end < 0:
            raise BadResponse(f"{where}: multipart part {len(parts) + 1} has no header end", where)
        headers = _part_headers(body[pos:header_end])
        start = header_end + separator
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            end = body.find(b"\n" + delimiter, start)
            crlf = 1
        else:
            crlf = 2
        if end < 0:
            raise BadResponse(f"{where}: multipart body ends inside part {len(parts) + 1} (truncated?)", where)
        parts.append(BodyPart(headers.get("content-type", default_type), body[start:end]))
        pos = end + crlf


def _part_headers(block: bytes) -> Dict[str, str]:
    headers: Dict[str, str] = {}
    for line in block.decode("latin-1").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip().lower()] = value.strip()
    return headers


def body_parts(body: bytes, content_type: Optional[str], where: str = "") -> List[BodyPart]:
    """Parts of a frames answer: multipart/related, or one bare frame (static servers)."""
    media, _ = split_media_type(content_type)
    if media.startswith("text/") or media.endswith("json") or media.endswith("xml"):
        raise BadResponse(f"{where}: the server answered {media} instead of pixel data", where)
    if media.startswith("multipart/"):
        return parse_multipart(body, content_type, where)
    if media in ("", ts.OCTET_STREAM) and _first_line_boundary(body) and b"content-type:" in body[:300].lower():
        return parse_multipart(body, content_type, where)  # multipart mislabelled as a plain frame
    return [BodyPart(content_type or ts.OCTET_STREAM, body)]


# -- negotiation -------------------------------------------------------------------------------
def frame_accept(transfer_syntax: Optional[str]) -> str:
    """The Accept header asking for frames in `transfer_syntax` (`*`: as stored; None: server default)."""
    if transfer_syntax is None:
        return f'multipart/related; type="{ts.OCTET_STREAM}"'
    media = ts.OCTET_STREAM if transfer_syntax == ANY_SYNTAX else ts.media_type(transfer_syntax)
    return f'multipart/related; type="{media}"; transfer-syntax={transfer_syntax}'


def negotiate(stored_syntax: Optional[str] = None, can_decode: Optional[Decodable] = None) -> List[str]:
    """Syntaxes to ask for, in order: the stored one (`*`) when it can be decoded here (or is not
    known yet), then explicit VR little endian, which every server must be able to send."""
    family = ts.family(stored_syntax)
    if stored_syntax and not (can_decode or _every_family)(family):
        return [ts.EXPLICIT_VR_LITTLE_ENDIAN]
    return [ANY_SYNTAX, ts.EXPLICIT_VR_LITTLE_ENDIAN]


def probe_policy(server: DicomwebServer) -> RetryPolicy:
    """The server's retries without 500: a refused encoding must fail fast, not back off."""
    return replace(server.retry, statuses=tuple(s for s in server.retry.statuses if s != 500))


# -- fetching ----------------------------------------------------------------------------------
def frames_path(study_uid: str, series_uid: str, sop_instance_uid: str, bulk_data_uri: Optional[str] = None,
                server: Optional[DicomwebServer] = None, resource: str = "frames") -> str:
    """Path of an instance's frames below the service root. A metadata BulkDataURI is used when it
    names a frames resource (static trees: `instances/<sop>/frames`, relative to the series, or
    absolute on the same server); others, like Orthanc's `.../bulk/7fe00010`, are whole-element
    bulk data, not frames, so the standard frames URL is used. Another `resource` names a folder
    beside `frames/` in the same instance (static-wado alternates such as `jlsThumbnail`)."""
    series_path = f"studies/{study_uid}/series/{series_uid}"
    parts = (bulk_data_uri or "").rstrip("/").rsplit("/", 1)
    if parts[-1] != "frames":
        return f"{series_path}/instances/{sop_instance_uid}/{resource}"
    instance = parts[0] if len(parts) == 2 else ""
    if "://" in instance:
        if server is None or not instance.startswith(server.url + "/"):
            raise ValueError(f"BulkDataURI {bulk_data_uri} is not on this server")
        return f"{instance[len(server.url) + 1:]}/{resource}"
    return "/".join(p for p in (series_path, instance.strip("/"), resource) if p)


def _request(server: DicomwebServer, path: str, numbers: Sequence[int], syntax: Optional[str],
             retry: Optional[RetryPolicy] = None) -> List[FrameData]:
    frame_list = ",".join(str(n) for n in numbers)
    response = server.get(f"{path}/{frame_list}", accept=frame_accept(syntax), headers=PIXEL_HEADERS, retry=retry,
                          max_bytes=server.limits.frame_bytes)
    where = server.url_for(f"{path}/{frame_list}")
    return frames_from_body(response.content, response.headers.get("Content-Type", ""), numbers, where,
                            response.status_code)


def frames_from_body(body: bytes, content_type: str, numbers: Sequence[int], where: str,
                     status: Optional[int] = None) -> List[FrameData]:
    """The frames of one answer's body, one per number asked, with the syntaxes their labels say."""
    parts = body_parts(body, content_type, where)
    if len(parts) != len(numbers):
        raise BadResponse(f"{where}: {len(parts)} frames in the answer, {len(numbers)} asked for", where, status)
    fallback_syntax = syntax_of(content_type)
    return [FrameData(number, part.data, syntax_of(part.content_type) or fallback_syntax, part.content_type)
            for number, part in zip(numbers, parts)]


def _fetch(server: DicomwebServer, path: str, numbers: Sequence[int], syntax: Optional[str],
           one_per_request: bool, retry: Optional[RetryPolicy] = None) -> Tuple[List[FrameData], bool]:
    """Frames in one request, or one per request when the server keeps one file per frame."""
    if not one_per_request:
        try:
            return _request(server, path, numbers, syntax, retry), False
        except NotFound:
            if len(numbers) == 1:
                raise
            first = _request(server, path, numbers[:1], syntax, retry)  # NotFound again: unknown instance
            logger.info("%s: no multi-frame requests (404), fetching one frame per request", server.url)
            return first + [f for n in numbers[1:] for f in _request(server, path, [n], syntax, retry)], True
    return [f for n in numbers for f in _request(server, path, [n], syntax, retry)], True


def _undecodable(frames: List[FrameData], can_decode: Decodable) -> bool:
    for frame in frames:
        family = ts.family(frame.transfer_syntax_uid) or ts.media_type_family(frame.content_type)
        if family is not None and not can_decode(family):
            return True
    return False


def fetch_frames(server: DicomwebServer, study_uid: str, series_uid: str, sop_instance_uid: str,
                 frame_numbers: Sequence[int], transfer_syntax: Optional[str] = None, *,
                 stored_syntax: Optional[str] = None, bulk_data_uri: Optional[str] = None,
                 traits: Optional[ServerTraits] = None, can_decode: Optional[Decodable] = None) -> List[FrameData]:
    """Frames (1-based numbers) of one instance, in the order asked.

    `transfer_syntax` None negotiates (module docstring) and remembers the outcome in `traits`
    (default: the server's own, `server.traits`); a UID or `*` asks exactly that. `stored_syntax`, when the
    metadata tells it, skips asking for an encoding that cannot be decoded here; `can_decode`
    says what can (pixels.can_decode; None: anything, so stored frames are always accepted).
    Raises NotFound (unknown instance or frame), BadResponse (wrong number of frames, refusal).
    """
    for keyword, uid in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid),
                         ("SOPInstanceUID", sop_instance_uid)):
        check_single_uid(keyword, uid)
    numbers = [int(n) for n in frame_numbers]
    if not numbers or min(numbers) < 1:
        raise ValueError(f"frame numbers are 1-based and at least one is needed: {list(frame_numbers)}")
    path = frames_path(study_uid, series_uid, sop_instance_uid, bulk_data_uri, server)
    traits = server.traits if traits is None else traits
    route = traits.route(server, series_uid)
    one_per_request = bool(route and route.one_per_request)
    if transfer_syntax is not None:
        frames, one_per_request = _fetch(server, path, numbers, transfer_syntax, one_per_request)
        if one_per_request and not (route and route.one_per_request):
            traits.remember_route(server, series_uid, FrameRoute(route.syntax if route else transfer_syntax, True))
        return frames
    candidates = [route.syntax] if route else negotiate(stored_syntax, can_decode)
    for index, syntax in enumerate(candidates):
        last = index == len(candidates) - 1
        try:
            frames, one_per_request = _fetch(server, path, numbers, syntax, one_per_request,
                                             None if last else probe_policy(server))
        except BadResponse as error:
            if last or error.status not in REFUSED_STATUSES:
                raise
            logger.info("%s refused frames as %s (HTTP %s); trying %s", server.url, syntax, error.status,
                        candidates[index + 1])
            continue
        if not last and syntax == ANY_SYNTAX and _undecodable(frames, can_decode or _every_family):
            logger.info("%s sent frames no installed decoder reads; asking %s", server.url, candidates[index + 1])
            continue
        traits.remember_route(server, series_uid, FrameRoute(syntax, one_per_request))
        return frames
    raise AssertionError("unreachable: the last candidate returns or raises")
