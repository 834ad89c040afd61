"""Frames of one series from a DIMSE peer: image-level C-GET of the tasks' instances (a few per
request, see VolumeLoad.multiframe_groups) on the worker thread's association (dimse/server.py)."""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

from ..cache import FrameCache, FrameKey
from ..dicomweb.frames import FrameData
from ..dicomweb.metadata import InstanceMetadata
from ..dimse import DimseServer
from ..loading import SliceTask
from .frame_fetcher import FrameFetcher

logger = logging.getLogger(__name__)


class DimseFrameFetcher(FrameFetcher):
    def __init__(self, server: DimseServer, study_uid: str, series_uid: str, instances: Sequence[InstanceMetadata],
                 cache: Optional[FrameCache] = None) -> None:
        super().__init__(cache)
        self.server = server
        self.study_uid = study_uid
        self.series_uid = series_uid
        self._classes: Dict[str, str] = {i.sop_instance_uid: i.sop_class_uid for i in instances}  # C-GET contexts

    def fetch(self, tasks: Sequence[SliceTask]) -> List[FrameData]:
        """The tasks' frames by one C-GET of their instances (held frames first)."""
        return self.server.fetch_frames(self.study_uid, self.series_uid,
                                        [(t.sop_instance_uid, t.frame_number) for t in tasks],
                                        sorted({self._classes.get(t.sop_instance_uid, "") for t in tasks}))

    def key(self, task: SliceTask) -> Optional[FrameKey]:
        """None (not cached) when a UID is not one (they come from the peer)."""
        try:
            return FrameKey(self.server.url, self.study_uid, self.series_uid, task.sop_instance_uid, task.frame_number)
        except ValueError as error:
            logger.info("%s", error)
            return None
