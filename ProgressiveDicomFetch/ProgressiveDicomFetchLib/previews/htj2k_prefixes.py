"""HTJ2K prefix previews: the first bytes of each frame by Range, decoded at reduced resolution;
later the rest of the same bytes (`Range: bytes=N-` with If-Range), so no byte is fetched twice.

The prefix length is measured once per series on a whole frame (probe.py): the end of the
resolution level whose shorter side is >= 64 pixels (1/4 per side for 512x512), plus a margin
for frames with more detail. Frames shorter than the prefix come whole in the first request.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..dicomweb.errors import DicomwebError
from ..dicomweb.frame_ranges import RangeAnswer, get_range
from ..dicomweb.frames import frames_from_body
from ..loading import SliceTask
from ..pixels import DecodeError, PixelDescription
from ..pixels.htj2k_preview import codestream_layout, decode_prefix, find_codestream, level_end, preview_level
from ..retrieve import DicomwebFrameFetcher
from ..volume import Quality
from .source import PreviewSource, SliceFetch

logger = logging.getLogger(__name__)

PREFIX_MARGIN = 1.15  # frames at the ends of a volume hold less detail; those in the middle, more
MIN_PREFIX = 1024
PROBE_MIN = 2 * 1024
SURE_END = 0.9  # a level found ending in the last 10 % of the probe's prefix may not be whole


@dataclass(frozen=True)
class _Prefix:
    data: bytes
    content_type: str
    validator: Optional[str]
    total: Optional[int]


def probe_length(pixels: PixelDescription) -> int:
    """The probe's prefix: 1/8 of the frame's native size (64 KB for 512x512 16-bit), enough to
    hold (and so to measure) the preview level of any CT or MR frame we have seen."""
    return max(PROBE_MIN, pixels.native_frame_bytes // 8)


def prefix_length(body: bytes, total: int, whole: bool) -> Tuple[int, str, int]:
    """The prefix to ask for frames like this one, measured on its first bytes (`whole`: all of
    them), bare or in a multipart wrapper, a note, and the preview's reduction per side (2**levels
    skipped); ValueError when such frames give no previews."""
    offset = find_codestream(body)
    if offset < 0:
        raise ValueError("the frames are not JPEG 2000 codestreams")
    codestream = bytes(body[offset:])
    layout = codestream_layout(codestream)
    reason = layout.why_not_previewable()
    if reason:
        raise ValueError(reason)
    skip = preview_level(layout)
    end = level_end(codestream, skip)
    while not whole and end > SURE_END * len(codestream):  # the level may go on: measure a coarser one
        if skip >= layout.levels:
            raise ValueError(f"the probe's {len(body)} bytes hold no whole resolution level")
        skip += 1
        end = level_end(codestream, skip)
    length = max(MIN_PREFIX, offset + int(math.ceil(end * PREFIX_MARGIN)))
    side = (math.ceil(layout.rows / 2 ** skip), math.ceil(layout.columns / 2 ** skip))
    return (length, f"{length} of {total} bytes ({100.0 * length / total:.1f} %) for {side[0]}x{side[1]}",
            2 ** skip)


class HTJ2KPrefixes(PreviewSource):
    name = "htj2k-prefix"
    quality = Quality.SUBRESOLUTION

    def __init__(self, length: int, accept: str, reduction: int = 1) -> None:
        self.length = length
        self.accept = accept
        self.reduction = reduction  # the level the prefix was sized for (more detail may come along)
        self._prefixes: Dict[Tuple[str, int], _Prefix] = {}
        self._lock = threading.Lock()

    def fetch_preview(self, fetcher: DicomwebFrameFetcher, task: SliceTask, pixels: PixelDescription) -> SliceFetch:
        answer = get_range(fetcher.server, fetcher.frame_path(task), self.accept, 0, self.length - 1)
        return self.take(fetcher, task, answer, pixels)

    def take(self, fetcher: DicomwebFrameFetcher, task: SliceTask, answer: RangeAnswer,
             pixels: PixelDescription) -> SliceFetch:
        """A prefix decoded as the slice's preview, kept for the rest; a whole frame (a short one,
        or a server that stopped honouring Range) is returned whole."""
        if not answer.partial or answer.whole:
            return SliceFetch(len(answer.data), frame=self._frame(fetcher, task, answer.content_type, answer.data))
        with self._lock:
            self._prefixes[(task.sop_instance_uid, task.frame_number)] = _Prefix(
                answer.data, answer.content_type, answer.validator, answer.total)
        offset = find_codestream(answer.data)
        try:
            if offset < 0:
                raise DecodeError("HTJ2K prefix", "no codestream at the start of the frame")
            return SliceFetch(len(answer.data), preview=decode_prefix(answer.data[offset:], pixels))
        except DecodeError as error:  # the exact frame still comes: only this preview is lost
            logger.info("slice %d of %s: no preview (%s)", task.k, fetcher.series_uid, error)
            return SliceFetch(len(answer.data))

    def fetch_whole(self, fetcher: DicomwebFrameFetcher, task: SliceTask) -> Optional[SliceFetch]:
        with self._lock:
            prefix = self._prefixes.pop((task.sop_instance_uid, task.frame_number), None)
        if prefix is None:  # the preview came whole, from the cache, or failed: an ordinary request
            return None
        try:
            answer = get_range(fetcher.server, fetcher.frame_path(task), self.accept, len(prefix.data), None,
                               prefix.validator)
            continues = answer.partial and answer.start == len(prefix.data) and answer.total == prefix.total
            body = prefix.data + answer.data if continues else answer.data  # 200: the frame changed
            frame = self._frame(fetcher, task, prefix.content_type if continues else answer.content_type, body)
        except DicomwebError:
            with self._lock:  # a retry continues from the same prefix (a frame that does not decode
                self._prefixes[(task.sop_instance_uid, task.frame_number)] = prefix  # is asked again whole instead)
            raise
        return SliceFetch(len(answer.data), frame=frame)

    @staticmethod
    def _frame(fetcher: DicomwebFrameFetcher, task: SliceTask, content_type: str, body: bytes):
        where = fetcher.server.url_for(fetcher.frame_path(task))
        return frames_from_body(body, content_type, [task.frame_number], where)[0]
