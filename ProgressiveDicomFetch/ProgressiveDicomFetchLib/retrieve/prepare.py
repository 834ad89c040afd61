"""One series made ready to load: metadata -> geometry -> one VolumeLoad per volume; and, for
scripts and tests, a whole series loaded in one thread.

The engine, the scene (which makes nodes before any pixel arrives) and `load_series` all start
a series here, so the fill setting and the checks (geometry, memory) are the same everywhere.
"""
from __future__ import annotations

import logging
from typing import Callable, List, Optional

from ..cache import FrameCache
from ..dicomweb.bulk_data import fetch_bulk_data
from ..dicomweb.server import DicomwebServer
from ..dicomweb.server_traits import ServerTraits
from ..geometry import series_geometry
from ..loading import SliceTask, VolumeLoad
from ..pixels.palette import Palette
from ..transport import is_dimse, series_instances
from .dicomweb_fetcher import DicomwebFrameFetcher
from .frame_fetcher import FrameFetcher, load_slices

logger = logging.getLogger(__name__)


def prepare_series(server: DicomwebServer, study_uid: str, series_uid: str, fill: str = "linear") -> List[VolumeLoad]:
    """The series' volumes with their buffers allocated, no pixel fetched yet (metadata by WADO-RS
    or, from a DIMSE peer, by C-FIND). Raises DicomwebError (metadata; DIMSE errors derive from it),
    ValueError (GeometryError, bad fill) or MemoryError (too large)."""
    instances = series_instances(server, study_uid, series_uid)
    geometry = series_geometry(instances, series_uid)
    for message in geometry.messages + [m for v in geometry.volumes for m in v.messages]:
        logger.info("series %s: %s", series_uid, message)
    loads = [VolumeLoad(volume, study_uid, instances, fill=fill) for volume in geometry.volumes]
    for load in loads:
        load.palette = palette_of(server, load)
    return loads


def palette_of(server: DicomwebServer, load: VolumeLoad) -> Optional[Palette]:
    """A PALETTE COLOR volume's LUTs, their data fetched when the metadata gives BulkDataURIs."""
    if load.geometry.pixels.photometric_interpretation != "PALETTE COLOR":
        return None
    dataset = load.geometry.dataset
    sop = str(dataset.get("SOPInstanceUID", ""))
    bulk = next((i.bulk_data for i in load.instances if i.sop_instance_uid == sop), {})
    return Palette.from_dataset(dataset, bulk, lambda uri: fetch_bulk_data(server, uri))


def fetcher_for(server: DicomwebServer, load: VolumeLoad, cache: Optional[FrameCache] = None,
                traits: Optional[ServerTraits] = None) -> FrameFetcher:
    """The fetcher of the series a volume belongs to: DICOMweb, or C-GET from a DIMSE peer."""
    if is_dimse(server):
        from .dimse_fetcher import DimseFrameFetcher
        return DimseFrameFetcher(server, load.study_uid, load.geometry.series_uid, load.instances, cache)
    return DicomwebFrameFetcher(server, load.study_uid, load.geometry.series_uid, load.instances, cache, traits)


def load_series(server: DicomwebServer, study_uid: str, series_uid: str,
                order: Optional[Callable[[List[SliceTask]], List[SliceTask]]] = None,
                fill: str = "linear", traits: Optional[ServerTraits] = None,
                cache: Optional[FrameCache] = None) -> List[VolumeLoad]:
    """Every volume of a series, loaded in one thread; `order` chooses the slice order (default k);
    frames in `cache` are not fetched again."""
    loads = prepare_series(server, study_uid, series_uid, fill)
    for load in loads:
        fetcher = fetcher_for(server, load, cache, traits)
        tasks = load.tasks()
        for task in (order(tasks) if order else tasks):
            load_slices(load, fetcher, [task])
        logger.info("series %s %s: %d slices loaded", series_uid, load.geometry.label, len(tasks))
    return loads
