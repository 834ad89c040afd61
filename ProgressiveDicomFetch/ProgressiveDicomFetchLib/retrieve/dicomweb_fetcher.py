"""Frames of one series from a DICOMweb server (WADO-RS): frame paths (BulkDataURIs of static
trees, alternates beside `frames/`), the stored syntax the metadata tells, the codecs installed
here, what is learnt about the server (its ServerTraits), and frames of one instance batched in one request."""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

from ..cache import FrameCache, FrameKey
from ..dicomweb.frames import FrameData, fetch_frames, frames_path
from ..dicomweb.server_traits import ServerTraits
from ..dicomweb.metadata import InstanceMetadata
from ..dicomweb.server import DicomwebServer
from ..loading import SliceTask
from ..pixels import can_decode
from .frame_fetcher import FrameFetcher

logger = logging.getLogger(__name__)


class DicomwebFrameFetcher(FrameFetcher):
    def __init__(self, server: DicomwebServer, study_uid: str, series_uid: str,
                 instances: Sequence[InstanceMetadata], cache: Optional[FrameCache] = None,
                 traits: Optional[ServerTraits] = None) -> None:
        super().__init__(cache)
        self.server = server
        self.study_uid = study_uid
        self.series_uid = series_uid
        self.traits = server.traits if traits is None else traits  # what is learnt about the server
        self._uri: Dict[str, Optional[str]] = {i.sop_instance_uid: i.pixel_data_uri for i in instances}
        self._stored: Dict[str, Optional[str]] = {i.sop_instance_uid: i.stored_syntax for i in instances}

    def frame_path(self, task: SliceTask, resource: str = "frames") -> str:
        """The path of the task's frame below the service root; another `resource` names an
        alternate kept beside `frames/` (e.g. `jlsThumbnail`)."""
        path = frames_path(self.study_uid, self.series_uid, task.sop_instance_uid,
                           self._uri.get(task.sop_instance_uid), self.server, resource)
        return f"{path}/{task.frame_number}"

    def fetch(self, tasks: Sequence[SliceTask]) -> List[FrameData]:
        """Frames of one instance in one request (several only for a multi-frame object)."""
        sop = tasks[0].sop_instance_uid
        if any(task.sop_instance_uid != sop for task in tasks):
            raise ValueError("one request carries frames of one instance only")
        return fetch_frames(self.server, self.study_uid, self.series_uid, sop, [t.frame_number for t in tasks],
                            stored_syntax=self._stored.get(sop), bulk_data_uri=self._uri.get(sop),
                            traits=self.traits, can_decode=can_decode)

    def key(self, task: SliceTask) -> Optional[FrameKey]:
        """None (not cached) when a UID is not one (they come from the server)."""
        try:
            return FrameKey(self.server.cache_identity, self.study_uid, self.series_uid, task.sop_instance_uid,
                            task.frame_number, self._stored.get(task.sop_instance_uid) or "")
        except ValueError as error:
            logger.info("%s", error)
            return None
