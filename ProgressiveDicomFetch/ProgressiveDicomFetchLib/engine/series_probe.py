"""A series' probe step (docs/architecture.md, step 2): which preview source it has, the probe's
whole frame handed to the first view on a thread of its own while the probe goes on, and the
preview the probe got for one slice written.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, List, Optional

from ..dicomweb.frames import FrameData
from ..loading import SliceTask
from ..previews import PreviewSource, Probe, RenderedPreviews, find_preview_source
from .series_state import SeriesState
from .slice_parts import write_got

logger = logging.getLogger(__name__)


def probe_series(state: SeriesState, rendered: RenderedPreviews,
                 first_view: Optional[Callable[[SliceTask, FrameData], None]]) -> Probe:
    """Find the series' preview source (previews/probe.py). `first_view` (None: the frame waits for
    its turn) writes the probe's whole frame; it runs on a `pdf-first-view` thread, and a rendering
    timed again waits for it (`settled`)."""
    writers: List[threading.Thread] = []

    def write_at_once(task: SliceTask, frame: FrameData) -> None:  # the probe goes on meanwhile
        writers.append(threading.Thread(target=first_view, args=(task, frame), name="pdf-first-view", daemon=True))
        writers[-1].start()

    def settled() -> None:
        for writer in writers:
            writer.join()

    probe = find_preview_source(state.fetcher, state.loads[0], rendered,
                                write_at_once if first_view is not None else None, settled)
    logger.info("series %s: %s", state.series_uid, probe.reason)
    state.preview_note = probe.reason
    if probe.preview is not None:  # the probe's slice: its preview (or its whole short frame)
        task, got = probe.preview
        try:
            write_got(state.loads[0], state.fetcher, probe.source or PreviewSource(), task, got)
        except ValueError as error:  # the slice still comes in its turn
            logger.info("series %s: the probe's preview of slice %d does not decode (%s)",
                        state.series_uid, task.k, error)
            probe.preview = None
    return probe
