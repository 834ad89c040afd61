"""What the engine asks of a preview source: the preview of a slice, later its whole frame.

A source fetches through the series' frame fetcher and returns what it got (`SliceFetch`); it
never writes into a volume: the engine does (docs/architecture.md, "The path of one slice").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..dicomweb.frames import FrameData
from ..loading import SliceTask
from ..pixels import PixelDescription
from ..retrieve import DicomwebFrameFetcher
from ..volume import Quality


@dataclass
class SliceFetch:
    """What one request brought for a slice: its network bytes, and a preview (STORED values at the
    source's quality) or the whole frame (a short frame comes whole), or neither (preview lost)."""

    size: int
    preview: Optional[np.ndarray] = None
    frame: Optional[FrameData] = None


class PreviewSource:
    """One series' preview source. Called from worker threads, the preview of a slice before its
    whole; the cache is asked by the engine before either."""

    name = "none"
    quality = Quality.SUBRESOLUTION  # what a preview is on the quality ladder
    reduction = 1  # how many times smaller per side its previews are (the ladder's rule: volume/fill.py)

    def fetch_preview(self, fetcher: DicomwebFrameFetcher, task: SliceTask, pixels: PixelDescription) -> SliceFetch:
        raise NotImplementedError

    def fetch_whole(self, fetcher: DicomwebFrameFetcher, task: SliceTask) -> Optional[SliceFetch]:
        """The exact frame; None: an ordinary frame request (the default)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"
