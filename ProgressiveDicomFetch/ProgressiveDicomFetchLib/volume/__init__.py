"""The volume model: a full-size buffer allocated once, per-slice quality, fill of missing slices.

Workers write decoded slices with `ProgressiveVolume.write_slice`; the main thread reads the
buffer and asks `take_dirty()` what changed. Pure numpy: no Slicer, Qt or VTK.
"""
from __future__ import annotations

from .casting import PixelRangeError
from .coarseness import COARSEST, LEVELS, Coarseness, coarseness, coarsest, describe, every_nth, level_name
from .fill import FILL_MODES
from .memory import AvailableMemory, VolumeTooLargeError, available_memory, check_fits, format_bytes
from .progressive_volume import ProgressiveVolume
from .quality import LOADED, Quality, quality_counts

__all__ = [
    "COARSEST",
    "LEVELS",
    "Coarseness",
    "coarseness",
    "coarsest",
    "describe",
    "every_nth",
    "level_name",
    "FILL_MODES",
    "LOADED",
    "AvailableMemory",
    "PixelRangeError",
    "ProgressiveVolume",
    "Quality",
    "quality_counts",
    "VolumeTooLargeError",
    "available_memory",
    "check_fits",
    "format_bytes",
]
