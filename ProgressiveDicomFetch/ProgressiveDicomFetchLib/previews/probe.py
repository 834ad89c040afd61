"""Which preview source a series has, found with one frame request (two 404s at most for alternates).

HTJ2K prefixes first (no extra bytes): the first bytes of the slice nearest the middle are asked
with Range. A 206 with a validator says the server honours Range (never assumed); the prefix sizes
the prefixes of the series and is that slice's preview. A 200 (Orthanc 1.10) is the whole frame:
no previews, and the frame is kept for its turn in the plan (`Probe.frame`), so nothing is fetched
twice. Then alternates beside `frames/`. Nothing found: the plan's
preview stages stay empty and the series loads by full frames, as on any server.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional, Tuple

from .. import transfer_syntax as ts
from ..cache import FrameCache
from ..dicomweb.errors import DicomwebError, NotFound
from ..dicomweb.frame_ranges import get_range
from ..dicomweb.frames import FrameData, frame_accept, frames_from_body, probe_policy
from ..dicomweb.server import DicomwebServer
from ..loading import SliceTask, VolumeLoad
from ..pixels.htj2k_preview import previews_available
from .alternates import ALTERNATES, Alternate
from .htj2k_prefixes import HTJ2KPrefixes, prefix_length, probe_length
from .source import PreviewSource

logger = logging.getLogger(__name__)


@dataclass
class Probe:
    """The outcome: the source (None: no previews), the network bytes the probe took, the slice it
    wrote (None: none), and why, for the log."""

    source: Optional[PreviewSource]
    bytes: int = 0
    wrote: Optional[int] = None
    reason: str = ""
    ranges: Optional[bool] = None  # what the probe learnt: the server honours Range (None: not asked)
    frame: Optional[Tuple[SliceTask, FrameData, int]] = None  # a whole frame it got, its network bytes


def probe_task(server: DicomwebServer, load: VolumeLoad, cache: Optional[FrameCache]) -> Optional[SliceTask]:
    """The slice nearest the middle whose frame is not in the cache (a probe never fetches twice)."""
    tasks = load.tasks()
    middle = load.volume.num_slices // 2
    for task in sorted(tasks, key=lambda t: (abs(t.k - middle), t.k)):
        key = load.cache_key(server, task) if cache is not None else None
        if cache is None or key is None or not cache.path(key).exists():
            return task
    return None


def find_preview_source(server: DicomwebServer, load: VolumeLoad, cache: Optional[FrameCache] = None,
                        ranges: Optional[bool] = None) -> Probe:
    """`ranges` False: the server is known to ignore Range (a probe of an earlier series), so only
    alternates are looked for; a server is asked once, and series after the first load as usual."""
    task = probe_task(server, load, cache)
    if task is None:
        return Probe(None, reason="every frame is in the cache")
    if ranges is False:
        found = Probe(None, reason="no prefixes: the server ignores Range", ranges=False)
    else:
        found = _probe_prefixes(server, load, task, cache)
    if found.source is not None:
        return found
    alternate = _probe_alternates(server, load, task)
    alternate.bytes += found.bytes
    alternate.wrote = found.wrote if alternate.wrote is None else alternate.wrote
    alternate.ranges, alternate.frame = found.ranges, found.frame
    if alternate.source is None:
        alternate.reason = f"{found.reason}; {alternate.reason}"
    return alternate


def _probe_prefixes(server: DicomwebServer, load: VolumeLoad, task: SliceTask, cache: Optional[FrameCache]) -> Probe:
    stored = set(load.stored_transfer_syntaxes)
    if load.geometry.components > 1:  # the server's default is often a transcoded frame, RGB already
        return Probe(None, reason="no prefixes: previews are greyscale, the series is colour")
    if None not in stored and not any(ts.family(s) == ts.HTJ2K_FAMILY for s in stored):
        return Probe(None, reason="no prefixes: the frames are not stored as HTJ2K")
    if not previews_available():
        return Probe(None, reason="no prefixes: decoding them needs imagecodecs (not installed)")
    accept = frame_accept(None)  # the server's default: Orthanc sends stored HTJ2K only so
    path = load.frame_path(server, task)
    try:
        answer = get_range(server, path, accept, 0, probe_length(load.geometry.pixels) - 1,
                           retry=probe_policy(server))
        frame = None
        if not answer.partial or answer.whole:
            frame = frames_from_body(answer.data, answer.content_type, [task.frame_number], server.url_for(path))[0]
    except (DicomwebError, ValueError) as error:  # the ordinary requests will meet (and report) it again
        return Probe(None, reason=f"no prefixes: the probe failed ({error})")
    probe = Probe(None, 0 if frame is not None else len(answer.data), ranges=answer.partial)
    if frame is not None:  # kept for its turn in the plan: the probe never changes the order slices show
        probe.frame = (task, frame, len(frame.data) if not answer.partial else len(answer.data))
    if not answer.partial:
        probe.reason = "no prefixes: the server ignores Range (it answered 200)"
    elif not answer.validator:
        probe.reason = "no prefixes: no ETag or Last-Modified to match a frame's two halves"
    else:
        try:
            length, description = prefix_length(answer.data, answer.total or len(answer.data), answer.whole)
        except ValueError as error:
            probe.reason = f"no prefixes: {error}"
        else:
            probe.source, probe.reason = HTJ2KPrefixes(length, accept), f"HTJ2K prefixes of {description}"
            if not answer.whole:
                probe.source.take(server, load, task, answer, cache)  # the probe's slice: its preview
                probe.wrote = task.k
    if probe.source is None and answer.partial and not answer.whole:
        probe.reason += "; the probe's frame comes whole later"
    return probe


def _probe_alternates(server: DicomwebServer, load: VolumeLoad, task: SliceTask) -> Probe:
    for name, quality in ALTERNATES:
        source = Alternate(name, quality)
        try:
            size = source.fetch_preview(server, load, task, None, retry=probe_policy(server))
        except NotFound:
            continue
        except (DicomwebError, ValueError) as error:
            logger.info("series %s: alternate %s unusable (%s)", load.geometry.series_uid, name, error)
            continue
        return Probe(source, size, task.k, reason=f"alternate {name}/ ({quality.name})")
    return Probe(None, reason="no alternates beside frames/")
