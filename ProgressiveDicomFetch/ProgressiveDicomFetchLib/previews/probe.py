"""Which preview source a series has, found with one frame request (two 404s at most for alternates).

HTJ2K prefixes first (no extra bytes): the first bytes of the slice nearest the middle are asked
with Range. A 206 with a validator says the server honours Range (never assumed); the prefix sizes
the prefixes of the series and is that slice's preview. A 200 (Range ignored) is the whole frame:
no previews, and the frame is kept for its turn in the plan (`Probe.frame`), so nothing is fetched
twice. Then alternates beside `frames/`. Then `/rendered` (rendered.py): the probe's slice is
rendered and its exact frame fetched (or taken from the Range probe) to calibrate the greys; the
frame is kept for its turn like the Range probe's. Nothing found: the plan's
preview stages stay empty and the series loads by full frames, as on any server.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple, Union

from .. import transfer_syntax as ts
from ..dicomweb.errors import DicomwebError, NotFound
from ..dicomweb.frame_ranges import get_range
from ..dicomweb.frames import FrameData, frame_accept, frames_from_body, probe_policy
from ..loading import SliceTask, VolumeLoad
from ..pixels import decode_frame
from ..pixels.description import PALETTE
from ..pixels.htj2k_preview import previews_available
from ..retrieve import DicomwebFrameFetcher
from .alternates import ALTERNATES, Alternate
from .htj2k_prefixes import HTJ2KPrefixes, prefix_length, probe_length
from .rendered import (Rendered, calibrate, calibrate_colour, narrowed_window, rendered_available, same_rescale,
                       value_window, viewport)
from .rendered_link import (FramesBeside, FrameTiming, RenderedPreviews, choose_option, does_not_pay, frames_beside,
                           too_quick_to_render, worth_retiming)
from .source import PreviewSource, SliceFetch

logger = logging.getLogger(__name__)


@dataclass
class Probe:
    """The outcome: the source (None: no previews), the network bytes the probe took, the preview
    it got for one slice (for the engine to write; None: none), and why, for the log."""

    source: Optional[PreviewSource]
    bytes: int = 0
    preview: Optional[Tuple[SliceTask, SliceFetch]] = None
    reason: str = ""
    frame: Optional[Tuple[SliceTask, FrameData, int]] = None  # a whole frame it got, its network bytes
    frame_s: Optional[float] = None  # how long that frame's request took (the link as measured)
    beside: Optional[FramesBeside] = None  # whole frames to fetch beside the previews (rendered_link.py)


def probe_task(fetcher: DicomwebFrameFetcher, load: VolumeLoad) -> Optional[SliceTask]:
    """The slice nearest the middle whose frame is not in the cache (a probe never fetches twice)."""
    tasks = load.tasks()
    middle = load.volume.num_slices // 2
    for task in sorted(tasks, key=lambda t: (abs(t.k - middle), t.k)):
        if not fetcher.is_cached(task):
            return task
    return None


def find_preview_source(fetcher: DicomwebFrameFetcher, load: VolumeLoad,
                        rendered: Union[bool, str, RenderedPreviews] = RenderedPreviews.OFF,
                        on_frame: Optional[Callable[[SliceTask, FrameData], None]] = None,
                        settled: Callable[[], None] = lambda: None) -> Probe:
    """A server known to ignore Range (its traits, learnt by the probe of an earlier series) is
    only asked for alternates (and `/rendered` unless `rendered` is off: in `auto` only where the
    link makes them pay, rendered_link.py); a server is asked once, and series after the first
    load as usual (until it is known, other series' probes wait for this first step only:
    ServerTraits.asking_ranges). `on_frame` gets the probe's whole frame at once (the first view,
    which the caller may write on a thread of its own); `settled()` returns once that write is done."""
    mode = RenderedPreviews.parse(rendered)
    task = probe_task(fetcher, load)
    if task is None:
        return Probe(None, reason="every frame is in the cache")
    with fetcher.traits.asking_ranges(fetcher.server) as ranges:  # one probe at a time asks a server
        if ranges is False:
            found = _whole_frame(fetcher, task, "no prefixes: the server ignores Range")
        else:
            found = _probe_prefixes(fetcher, load, task)
    if found.source is not None:
        return found
    if found.frame is not None and on_frame is not None:
        on_frame(found.frame[0], found.frame[1])
    alternate = _probe_alternates(fetcher, load, task)
    alternate.bytes += found.bytes
    alternate.preview = found.preview if alternate.preview is None else alternate.preview
    alternate.frame, alternate.frame_s = found.frame, found.frame_s
    if alternate.source is not None:
        return alternate
    alternate.reason = f"{found.reason}; {alternate.reason}"
    if mode is RenderedPreviews.OFF or alternate.preview is not None:  # (a preview of the probe's slice: no calibration frame)
        return alternate
    rendered = _probe_rendered(fetcher, load, task, alternate, mode, settled)
    rendered.bytes += alternate.bytes
    if rendered.source is None:
        rendered.reason = f"{alternate.reason}; {rendered.reason}"
    return rendered


def _timed_frame(fetcher: DicomwebFrameFetcher, task: SliceTask) -> Tuple[Tuple[SliceTask, FrameData, int], float]:
    """The probe slice's exact frame (the plan fetches it anyway: kept for its turn) and how long
    its request took (the link as measured)."""
    started = time.perf_counter()
    exact = fetcher.fetch([task])[0]
    return (task, exact, len(exact.data)), time.perf_counter() - started


def _timed_rendering(source: Rendered, fetcher: DicomwebFrameFetcher, task: SliceTask) -> Tuple[Tuple[Any, int], float]:
    """The slice's rendering (greys, network bytes) and how long its request took."""
    started = time.perf_counter()
    got = source.fetch_grey(fetcher, task, retry=probe_policy(fetcher.server))
    return got, time.perf_counter() - started


def _second_task(fetcher: DicomwebFrameFetcher, load: VolumeLoad, probed: SliceTask) -> Optional[SliceTask]:
    """A second slice to render for timing: the one nearest a quarter of the series (far from the
    probe's exact middle slice, so its preview shows early), not cached."""
    quarter = load.volume.num_slices // 4
    return next((t for t in sorted(load.tasks(), key=lambda t: (abs(t.k - quarter), t.k))
                 if t.k != probed.k and not fetcher.is_cached(t)), None)


def _whole_frame(fetcher: DicomwebFrameFetcher, task: SliceTask, reason: str) -> Probe:
    try:
        frame, seconds = _timed_frame(fetcher, task)
    except (DicomwebError, ValueError) as error:  # the ordinary requests will meet (and report) it again
        return Probe(None, reason=f"{reason}; the probe's frame failed ({error})")
    return Probe(None, frame=frame, frame_s=seconds, reason=reason)


def _probe_prefixes(fetcher: DicomwebFrameFetcher, load: VolumeLoad, task: SliceTask) -> Probe:
    stored = set(load.stored_transfer_syntaxes)
    if load.geometry.components > 1:  # the server's default is often a transcoded frame, RGB already
        return Probe(None, reason="no prefixes: previews are greyscale, the series is colour")
    if None not in stored and not any(ts.family(s) == ts.HTJ2K_FAMILY for s in stored):
        return Probe(None, reason="no prefixes: the frames are not stored as HTJ2K")
    if not previews_available():
        return Probe(None, reason="no prefixes: decoding them needs imagecodecs (not installed)")
    accept = frame_accept(None)  # the server's default: some send stored HTJ2K only so (frames.py)
    server = fetcher.server
    path = fetcher.frame_path(task)
    try:
        started = time.perf_counter()
        answer = get_range(server, path, accept, 0, probe_length(load.geometry.pixels) - 1,
                           retry=probe_policy(server))
        seconds = time.perf_counter() - started
        frame = None
        if not answer.partial or answer.whole:
            frame = frames_from_body(answer.data, answer.content_type, [task.frame_number], server.url_for(path))[0]
    except (DicomwebError, ValueError) as error:  # the ordinary requests will meet (and report) it again
        return Probe(None, reason=f"no prefixes: the probe failed ({error})")
    fetcher.traits.learn_ranges(server, answer.partial)
    probe = Probe(None, 0 if frame is not None else len(answer.data))
    if frame is not None:  # kept for its turn in the plan: the probe never changes the order slices show
        probe.frame = (task, frame, len(frame.data) if not answer.partial else len(answer.data))
        probe.frame_s = seconds if not answer.partial else None  # a whole frame in one answer: the link's time
    if not answer.partial:
        probe.reason = "no prefixes: the server ignores Range (it answered 200)"
    elif not answer.validator:
        probe.reason = "no prefixes: no ETag or Last-Modified to match a frame's two halves"
    else:
        try:
            length, description, reduction = prefix_length(answer.data, answer.total or len(answer.data), answer.whole)
        except ValueError as error:
            probe.reason = f"no prefixes: {error}"
        else:
            probe.source, probe.reason = HTJ2KPrefixes(length, accept, reduction), f"HTJ2K prefixes of {description}"
            if not answer.whole:
                probe.preview = (task, probe.source.take(fetcher, task, answer, load.geometry.pixels))
    if probe.source is None and answer.partial and not answer.whole:
        probe.reason += "; the probe's frame comes whole later"
    return probe


def _probe_alternates(fetcher: DicomwebFrameFetcher, load: VolumeLoad, task: SliceTask) -> Probe:
    for name, quality in ALTERNATES:
        source = Alternate(name, quality)
        try:
            got = source.fetch_preview(fetcher, task, load.geometry.pixels, retry=probe_policy(fetcher.server))
        except NotFound:
            continue
        except (DicomwebError, ValueError) as error:
            logger.info("series %s: alternate %s unusable (%s)", load.geometry.series_uid, name, error)
            continue
        return Probe(source, got.size, (task, got), reason=f"alternate {name}/ ({quality.name})")
    return Probe(None, reason="no alternates beside frames/")


def _probe_rendered(fetcher: DicomwebFrameFetcher, load: VolumeLoad, task: SliceTask, before: Probe,
                    mode: RenderedPreviews, settled: Callable[[], None] = lambda: None) -> Probe:
    """Fetch the probe slice's exact frame (kept for its turn, unless the prefix probe already has
    it), then, where the link may make renderings pay (`auto`) or always (`on`), render it at the
    size the link suits and calibrate; the source only when both hold (rendered.py, rendered_link.py).
    A rendering timed again (`worth_retiming`) waits for `settled()`: the first view's fill shares
    the cores and may be what made the first one slow."""
    if not rendered_available():
        return Probe(None, frame=before.frame, frame_s=before.frame_s,
                     reason="no rendered previews: decoding them needs a JPEG decoder (imagecodecs, "
                            "pylibjpeg-libjpeg or Pillow; none installed)")
    geometry = load.geometry
    rescale = same_rescale((s.slope, s.intercept) for s in geometry.slices if s is not None)
    probe = Probe(None, frame=before.frame, frame_s=before.frame_s)
    if rescale is None:
        probe.reason = "no rendered previews: the slices differ in rescale slope/intercept"
        return probe
    pixels = geometry.pixels
    channels = pixels.samples_per_pixel
    if pixels.photometric_interpretation == PALETTE or channels not in (1, 3) or (channels == 3 and pixels.bits_stored != 8):
        probe.reason = (f"no rendered previews: a rendering has 8 bits per channel, the series is "
                        f"{pixels.photometric_interpretation} with {channels} x {pixels.bits_stored} bits")
        return probe
    try:
        if probe.frame is None:
            probe.frame, probe.frame_s = _timed_frame(fetcher, task)
        timing = FrameTiming(probe.frame[2], probe.frame_s) if probe.frame_s is not None else None
        skip = None if mode is RenderedPreviews.ON else (
            too_quick_to_render(timing) if timing is not None else "the link was not measured (no whole frame timed)")
        if skip is not None:
            probe.reason = f"no rendered previews: {skip}"
            return probe
        exact = probe.frame[1]
        values = decode_frame(exact.data, exact.transfer_syntax_uid, pixels, exact.content_type) * rescale[0] + rescale[1]
        window = value_window(pixels, *rescale)  # colour: 0..255, the rendering as is (servers ignore window)
        window = narrowed_window(window, values) if channels == 1 else window
        side, quality = choose_option(pixels, load.volume.num_slices, timing)
        source = Rendered(window, rescale[0], rescale[1], viewport(pixels, side), quality, channels)
        (grey, probe.bytes), render_s = _timed_rendering(source, fetcher, task)
        rendering_bytes, second = probe.bytes, None
        retime = timing is not None and worth_retiming(timing, render_s, rendering_bytes)
        other = _second_task(fetcher, load, task) if retime else None
        if other is not None:  # the quicker of two; the second is that slice's preview (none is fetched twice)
            settled()
            second, again = _timed_rendering(source, fetcher, other)
            render_s = min(render_s, again)
            probe.bytes += second[1]
        skip = does_not_pay(timing, render_s, rendering_bytes) if mode is RenderedPreviews.AUTO and timing is not None else None
        if skip is not None:
            probe.reason = f"no rendered previews: {skip}"
            return probe
        source.calibration = (calibrate if channels == 1 else calibrate_colour)(grey, values, window)
    except (DicomwebError, ValueError) as error:  # DecodeError is a ValueError
        probe.reason = f"no rendered previews: {error}"
        return probe
    if other is not None and second is not None:
        probe.preview = (other, source.preview_of(*second, pixels, fetcher, other))
    link = "" if timing is None else (f"; the link: frame {timing.bytes / 1e3:.0f} KB in {timing.seconds * 1e3:.1f} ms, "
                                      f"rendering {render_s * 1e3:.1f} ms{' (the quicker of two)' if second else ''}")
    probe.beside = frames_beside(timing, render_s, rendering_bytes) if timing is not None else None
    link += f"; {probe.beside.describe()}" if probe.beside is not None else ""
    probe.source, probe.reason = source, f"{source.describe()} on slice {task.k}{link}"
    return probe
