"""The volume model: one volume of a series, its geometry, its progressive buffer, and how a frame
lands in it (decode -> rescale with the frame's own slope/intercept -> write slice k).

No network and no cache here: frames come from a frame fetcher (retrieve/), and the engine, or
`retrieve.load_series` for scripts, writes them in (docs/architecture.md, "The path of one slice").
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .dicomweb.frames import FrameData
from .dicomweb.metadata import InstanceMetadata
from .geometry import VolumeGeometry
from .pixels import decode_frame, stored_to_modality
from .pixels.palette import Palette
from .volume import ProgressiveVolume, Quality

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SliceTask:
    """Fetch frame `frame_number` of instance `sop_instance_uid` into slice `k`."""

    k: int
    sop_instance_uid: str
    frame_number: int


class VolumeLoad:
    """A volume's geometry plus its buffer (allocated once, or a given one such as a node's array),
    and the metadata of the instances it was made from (a fetcher is built from them)."""

    def __init__(self, geometry: VolumeGeometry, study_uid: str, instances: Sequence[InstanceMetadata] = (),
                 fill: str = "linear", buffer: Optional[np.ndarray] = None) -> None:
        self.geometry = geometry
        self.study_uid = study_uid
        self.instances: Tuple[InstanceMetadata, ...] = tuple(instances)
        self.volume = ProgressiveVolume(geometry.buffer_shape, geometry.dtype, fill=fill, buffer=buffer)
        self.palette: Optional[Palette] = None  # PALETTE COLOR: the LUTs (retrieve/prepare.py fetches them)

    @property
    def stored_transfer_syntaxes(self) -> List[Optional[str]]:
        """The instances' stored syntaxes where the metadata gives them (None: not said)."""
        return [i.stored_syntax for i in self.instances]

    def tasks(self) -> List[SliceTask]:
        """One task per slice that has a frame (missing slices are filled, never fetched)."""
        return [SliceTask(k, f.sop_instance_uid, f.frame_number) for k, f in enumerate(self.geometry.slices)
                if f is not None]

    def write(self, k: int, frame: FrameData, quality: Quality = Quality.FULL) -> bool:
        """Decode, rescale with this frame's own slope/intercept, and write slice k (False: not better)."""
        self._slice(k)
        stored = decode_frame(frame.data, frame.transfer_syntax_uid, self.geometry.pixels, frame.content_type)
        return self.write_stored(k, stored, quality)

    def write_stored(self, k: int, stored: np.ndarray, quality: Quality, reduction: int = 1) -> bool:
        """Write slice k from (rows, columns) STORED values, e.g. a preview reduced `reduction` times
        per side before it was brought to full size, or (rows, columns, 3) RGB (False: not taken).
        PALETTE COLOR indices go through the palette."""
        geometry = self._slice(k)
        if self.geometry.pixels.photometric_interpretation == "PALETTE COLOR":
            if self.palette is None:
                raise ValueError(f"series {self.geometry.series_uid}: PALETTE COLOR image without its palette")
            return self.volume.write_slice(k, self.palette.apply(stored), quality, reduction)
        values = stored_to_modality(stored, geometry.slope, geometry.intercept, self.volume.dtype)
        return self.volume.write_slice(k, values, quality, reduction)

    def _slice(self, k: int):
        geometry = self.geometry.slices[k]
        if geometry is None:
            raise ValueError(f"slice {k} of {self.geometry.series_uid} has no frame (it is a gap)")
        return geometry

    def multiframe_groups(self, any_instance: bool = False) -> Dict[int, str]:
        """k -> SOPInstanceUID for slices whose frame is part of a multi-frame instance. With
        `any_instance` (DIMSE: a C-GET may carry several instances) all slices form one group."""
        if any_instance:
            return {task.k: self.geometry.series_uid for task in self.tasks()}
        counts: Dict[str, int] = {}
        for task in self.tasks():
            counts[task.sop_instance_uid] = counts.get(task.sop_instance_uid, 0) + 1
        return {task.k: task.sop_instance_uid for task in self.tasks() if counts[task.sop_instance_uid] > 1}


def touch_memory(loads: Sequence[VolumeLoad]) -> None:
    """Map the volumes' new buffers in before the first fill needs them (ProgressiveVolume.touch_memory);
    run in its own thread. Not needed for correctness: a failure is only logged."""
    try:
        for load in loads:
            load.volume.touch_memory()
    except Exception:  # noqa: BLE001 -- a daemon thread's error would otherwise vanish
        logger.exception("touching the buffers of series %s failed", loads[0].geometry.series_uid if loads else "?")
