"""The frame fetcher interface: given slice tasks of one series, return their frames.

A fetcher never writes into a volume; `load_slices` is the one place where fetched frames land
in the volume model (decode, write, then keep in the cache: a frame enters the cache only after
it decoded, so a bad answer is never kept). The DICOMweb fetcher is one implementation
(dicomweb_fetcher.py); others (DIMSE C-GET, whole-instance retrieval) implement `fetch` and `key`.
"""
from __future__ import annotations

import logging
from typing import List, Optional, Sequence

from ..cache import FrameCache, FrameKey
from ..dicomweb.frames import FrameData
from ..loading import SliceTask, VolumeLoad

logger = logging.getLogger(__name__)


class FrameFetcher:
    """Frames of one series: from the cache (`cached`), or from the network (`fetch`)."""

    def __init__(self, cache: Optional[FrameCache] = None) -> None:
        self.cache = cache

    # -- what an implementation provides --------------------------------------------------------
    def fetch(self, tasks: Sequence[SliceTask]) -> List[FrameData]:
        """The tasks' frames from the network, in order (the cache is not asked)."""
        raise NotImplementedError

    def key(self, task: SliceTask) -> Optional[FrameKey]:
        """The frame's cache key; None: not cached."""
        return None

    # -- the cache ------------------------------------------------------------------------------
    def cached(self, task: SliceTask) -> Optional[FrameData]:
        key = self.key(task) if self.cache is not None else None
        return self.cache.get(key) if key is not None else None

    def is_cached(self, task: SliceTask) -> bool:
        key = self.key(task) if self.cache is not None else None
        return key is not None and self.cache.path(key).exists()

    def keep(self, task: SliceTask, frame: FrameData) -> None:
        """Keep a frame that decoded."""
        key = self.key(task) if self.cache is not None else None
        if key is not None:
            self.cache.put(key, frame)

    def forget(self, task: SliceTask) -> None:
        """Drop a cached frame that no longer decodes (e.g. its codec is gone)."""
        key = self.key(task) if self.cache is not None else None
        if key is not None:
            self.cache.discard(key)


def write_fetched(load: VolumeLoad, fetcher: FrameFetcher, task: SliceTask, frame: FrameData) -> None:
    """Write a whole frame fetched from the network at FULL; then (it decoded) keep it in the cache."""
    load.write(task.k, frame)
    fetcher.keep(task, frame)


def write_cached(load: VolumeLoad, fetcher: FrameFetcher, task: SliceTask) -> bool:
    """Write the task's frame from the cache; False when it is not there (or no longer decodes)."""
    frame = fetcher.cached(task)
    if frame is None:
        return False
    try:
        load.write(task.k, frame)
        return True
    except ValueError as error:  # e.g. its codec is gone: fetch it again
        logger.info("cached frame for slice %d does not decode (%s); fetching it", task.k, error)
        fetcher.forget(task)
        return False


def load_slices(load: VolumeLoad, fetcher: FrameFetcher, tasks: Sequence[SliceTask]) -> List[int]:
    """Fetch (the cache first), decode and write the tasks' slices; returns the bytes each took
    from the network (0: served by the cache). One request carries only the frames the cache lacks."""
    sizes = [0] * len(tasks)
    missing = [index for index, task in enumerate(tasks) if not write_cached(load, fetcher, task)]
    if missing:
        frames = fetcher.fetch([tasks[i] for i in missing])
        for index, frame in zip(missing, frames):
            write_fetched(load, fetcher, tasks[index], frame)
            sizes[index] = len(frame.data)
    return sizes
