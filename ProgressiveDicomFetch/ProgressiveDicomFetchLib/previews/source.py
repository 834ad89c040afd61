"""What the engine asks of a preview source: the preview of a slice, later its whole frame."""
from __future__ import annotations

from typing import Optional

from ..cache import FrameCache
from ..dicomweb.frames import FrameRoutes
from ..dicomweb.server import DicomwebServer
from ..loading import SliceTask, VolumeLoad
from ..volume import Quality


class PreviewSource:
    """One series' preview source. Both calls write into `load` and return the network bytes
    they took; they are called from worker threads, the preview of a slice before its whole."""

    name = "none"
    quality = Quality.SUBRESOLUTION  # what a preview is on the quality ladder

    def fetch_preview(self, server: DicomwebServer, load: VolumeLoad, task: SliceTask,
                      cache: Optional[FrameCache]) -> int:
        raise NotImplementedError

    def fetch_whole(self, server: DicomwebServer, load: VolumeLoad, task: SliceTask,
                    routes: Optional[FrameRoutes], cache: Optional[FrameCache]) -> int:
        """The exact frame (default: an ordinary frame request, the cache first)."""
        return load.load_many(server, [task], routes, cache)[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"
