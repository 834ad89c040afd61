"""The per-slice quality ladder (docs/architecture.md): a slice is never overwritten by worse data."""
from __future__ import annotations

from enum import IntEnum
from typing import Dict

import numpy as np


class Quality(IntEnum):
    """How good the pixels of one slice are; the order is the point (compare with < and >=)."""

    MISSING = 0  # nothing there yet (zeros)
    FILLED = 1  # copied or interpolated from loaded neighbours: a placeholder, never a source
    SUBRESOLUTION = 2  # real pixels of this slice, at reduced in-plane resolution
    LOSSY = 3  # real pixels, full resolution, lossy compression
    FULL = 4  # the exact pixels


#: The lowest quality that counts as loaded: a source for filling its neighbours.
LOADED = Quality.SUBRESOLUTION


def quality_counts(qualities: np.ndarray) -> Dict[Quality, int]:
    """How many slices of per-slice `qualities` are at each quality (every level, zeros included)."""
    tally = np.bincount(qualities, minlength=len(Quality))
    return {level: int(tally[level]) for level in Quality}
