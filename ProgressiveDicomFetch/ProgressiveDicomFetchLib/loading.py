"""One volume being loaded: its geometry, its progressive buffer, and how a fetched frame lands in it.

`VolumeLoad.write` is the unit of work a worker does (decode -> rescale -> write slice k); the
engine schedules many of them concurrently. `load_series` does it all in one thread, in a given
order, for scripts and tests.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from .cache import FrameCache, FrameKey
from .dicomweb.frames import FrameData, FrameRoutes, fetch_frames, frames_path
from .dicomweb.metadata import InstanceMetadata, series_metadata
from .dicomweb.records import text
from .dicomweb.server import DicomwebServer
from .geometry import VolumeGeometry, series_geometry
from .pixels import decode_frame, stored_to_modality
from .volume import ProgressiveVolume, Quality

logger = logging.getLogger(__name__)

PIXEL_DATA = "7FE00010"


@dataclass(frozen=True)
class SliceTask:
    """Fetch frame `frame_number` of instance `sop_instance_uid` into slice `k`."""

    k: int
    sop_instance_uid: str
    frame_number: int


class VolumeLoad:
    """A volume's geometry plus its buffer (allocated once, or a given one such as a node's array)."""

    def __init__(self, geometry: VolumeGeometry, study_uid: str, instances: Sequence[InstanceMetadata] = (),
                 fill: str = "linear", buffer: Optional[np.ndarray] = None) -> None:
        self.geometry = geometry
        self.study_uid = study_uid
        self.volume = ProgressiveVolume(geometry.shape, geometry.dtype, fill=fill, buffer=buffer)
        # Static servers point frames at BulkDataURIs; a known stored syntax saves a negotiation.
        self._bulk: Dict[str, Optional[str]] = {i.sop_instance_uid: i.bulk_data.get(PIXEL_DATA) for i in instances}
        self._stored: Dict[str, Optional[str]] = {
            i.sop_instance_uid: i.transfer_syntax_uid or text(i.attributes, "00083002") or None for i in instances}

    @property
    def stored_transfer_syntaxes(self) -> List[Optional[str]]:
        """The instances' stored syntaxes where the metadata gives them (None: not said)."""
        return list(self._stored.values())

    def tasks(self) -> List[SliceTask]:
        """One task per slice that has a frame (missing slices are filled, never fetched)."""
        return [SliceTask(k, f.sop_instance_uid, f.frame_number) for k, f in enumerate(self.geometry.slices)
                if f is not None]

    def write(self, k: int, frame: FrameData, quality: Quality = Quality.FULL) -> bool:
        """Decode, rescale with this frame's own slope/intercept, and write slice k (False: not better)."""
        self._slice(k)
        stored = decode_frame(frame.data, frame.transfer_syntax_uid, self.geometry.pixels, frame.content_type)
        return self.write_stored(k, stored, quality)

    def write_stored(self, k: int, stored: np.ndarray, quality: Quality) -> bool:
        """Write slice k from (rows, columns) STORED values, e.g. a preview (False: not better)."""
        geometry = self._slice(k)
        values = stored_to_modality(stored, geometry.slope, geometry.intercept, self.volume.dtype)
        return self.volume.write_slice(k, values, quality)

    def _slice(self, k: int):
        geometry = self.geometry.slices[k]
        if geometry is None:
            raise ValueError(f"slice {k} of {self.geometry.series_uid} has no frame (it is a gap)")
        return geometry

    def frame_path(self, server: DicomwebServer, task: SliceTask, resource: str = "frames") -> str:
        """The path of the task's frame below the service root (one frame); another `resource`
        names an alternate kept beside `frames/` (e.g. `jlsThumbnail`)."""
        path = frames_path(self.study_uid, self.geometry.series_uid, task.sop_instance_uid,
                           self._bulk.get(task.sop_instance_uid), server)
        return f"{path[:-len('frames')]}{resource}/{task.frame_number}"

    def write_fetched(self, server: DicomwebServer, task: SliceTask, frame: FrameData,
                      cache: Optional[FrameCache]) -> None:
        """Write a whole frame fetched from the network at FULL; then (it decoded) keep it in the cache."""
        self.write(task.k, frame)
        key = self.cache_key(server, task) if cache is not None else None
        if cache is not None and key is not None:
            cache.put(key, frame)

    def from_cache(self, server: DicomwebServer, task: SliceTask, cache: Optional[FrameCache]) -> bool:
        """Write the task's frame from the cache; False when it is not there (or no longer decodes)."""
        key = self.cache_key(server, task) if cache is not None else None
        frame = cache.get(key) if cache is not None and key is not None else None
        if frame is None:
            return False
        try:
            self.write(task.k, frame)
            return True
        except ValueError as error:  # e.g. its codec is gone: fetch it again
            logger.info("cached frame for slice %d does not decode (%s); fetching it", task.k, error)
            cache.discard(key)
            return False

    def fetch(self, server: DicomwebServer, task: SliceTask, routes: Optional[FrameRoutes] = None) -> FrameData:
        return self.fetch_many(server, [task], routes)[0]

    def fetch_many(self, server: DicomwebServer, tasks: Sequence[SliceTask],
                   routes: Optional[FrameRoutes] = None) -> List[FrameData]:
        """Frames of one instance in one request (several only for a multi-frame object)."""
        sop = tasks[0].sop_instance_uid
        if any(task.sop_instance_uid != sop for task in tasks):
            raise ValueError("one request carries frames of one instance only")
        return fetch_frames(server, self.study_uid, self.geometry.series_uid, sop, [t.frame_number for t in tasks],
                            stored_syntax=self._stored.get(sop), bulk_data_uri=self._bulk.get(sop), routes=routes)

    def cache_key(self, server: DicomwebServer, task: SliceTask) -> Optional[FrameKey]:
        """The frame's cache key; None (not cached) when a UID is not one (they come from the server)."""
        try:
            return FrameKey(server.cache_identity, self.study_uid, self.geometry.series_uid, task.sop_instance_uid,
                            task.frame_number, self._stored.get(task.sop_instance_uid) or "")
        except ValueError as error:
            logger.info("%s", error)
            return None

    def load_many(self, server: DicomwebServer, tasks: Sequence[SliceTask], routes: Optional[FrameRoutes] = None,
                  cache: Optional[FrameCache] = None) -> List[int]:
        """Fetch (the cache first), decode and write the tasks' slices; returns the bytes each took
        from the network (0: served by the cache). A frame enters the cache only after it decoded,
        so a bad answer is never kept; one request carries only the frames the cache lacks."""
        sizes = [0] * len(tasks)
        missing = [index for index, task in enumerate(tasks) if not self.from_cache(server, task, cache)]
        if missing:
            frames = self.fetch_many(server, [tasks[i] for i in missing], routes)
            for index, frame in zip(missing, frames):
                self.write_fetched(server, tasks[index], frame, cache)
                sizes[index] = len(frame.data)
        return sizes

    def multiframe_groups(self) -> Dict[int, str]:
        """k -> SOPInstanceUID for slices whose frame is part of a multi-frame instance."""
        counts: Dict[str, int] = {}
        for task in self.tasks():
            counts[task.sop_instance_uid] = counts.get(task.sop_instance_uid, 0) + 1
        return {task.k: task.sop_instance_uid for task in self.tasks() if counts[task.sop_instance_uid] > 1}

    def fetch_and_write(self, server: DicomwebServer, task: SliceTask, routes: Optional[FrameRoutes] = None,
                        cache: Optional[FrameCache] = None) -> int:
        """One slice; the network bytes it took (0: from the cache)."""
        return self.load_many(server, [task], routes, cache)[0]


def load_series(server: DicomwebServer, study_uid: str, series_uid: str,
                order: Optional[Callable[[List[SliceTask]], List[SliceTask]]] = None,
                fill: str = "linear", routes: Optional[FrameRoutes] = None,
                cache: Optional[FrameCache] = None) -> List[VolumeLoad]:
    """Every volume of a series, loaded in one thread; `order` chooses the slice order (default k);
    frames in `cache` are not fetched again."""
    instances = series_metadata(server, study_uid, series_uid)
    geometry = series_geometry(instances, series_uid)
    loads = [VolumeLoad(volume, study_uid, instances, fill=fill) for volume in geometry.volumes]
    for load in loads:
        tasks = load.tasks()
        for task in (order(tasks) if order else tasks):
            load.fetch_and_write(server, task, routes, cache)
        logger.info("series %s %s: %d slices loaded", series_uid, load.geometry.label, len(tasks))
    return loads
