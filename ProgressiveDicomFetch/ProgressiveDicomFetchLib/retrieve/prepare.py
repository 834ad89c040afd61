"""One series made ready to load: metadata -> geometry -> one VolumeLoad per volume.

The engine, the scene (which makes nodes before any pixel arrives) and `load_series` all start
a series here, so the fill setting and the checks (geometry, memory) are the same everywhere.
"""
from __future__ import annotations

import logging
from typing import List

from ..dicomweb.metadata import series_metadata
from ..dicomweb.server import DicomwebServer
from ..geometry import series_geometry
from ..loading import VolumeLoad

logger = logging.getLogger(__name__)


def prepare_series(server: DicomwebServer, study_uid: str, series_uid: str, fill: str = "linear") -> List[VolumeLoad]:
    """The series' volumes with their buffers allocated, no pixel fetched yet. Raises
    DicomwebError (metadata), ValueError (GeometryError, bad fill) or MemoryError (too large)."""
    instances = series_metadata(server, study_uid, series_uid)
    geometry = series_geometry(instances, series_uid)
    for message in geometry.messages + [m for v in geometry.volumes for m in v.messages]:
        logger.info("series %s: %s", series_uid, message)
    return [VolumeLoad(volume, study_uid, instances, fill=fill) for volume in geometry.volumes]
