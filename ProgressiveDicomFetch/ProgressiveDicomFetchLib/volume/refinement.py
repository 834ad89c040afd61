"""One reformatted plane of a volume as the buffer shows it at each coarseness level (for pictures).

Each plane is made by the volume model itself: the exact slices of that level (k = 0, N, 2N, ...;
first "one exact slice", the moment the volume is covered) are written into a `ProgressiveVolume`,
which fills the others as it does during a load. The fill works along k, voxel by voxel, so
replaying one row of voxels (j fixed) gives exactly the plane the full volume would show, at 1/J
of the memory. Drawing is output/refinement_picture.py's job.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from .coarseness import every_nth, level_name
from .progressive_volume import ProgressiveVolume

DEFAULT_LEVELS = (8, 4, 2)


def replay_plane(volume: np.ndarray, exact: Sequence[int], row: int, fill: str = "linear") -> np.ndarray:
    """The (K, I) plane at row `row` of a (K, J, I) volume when only the slices `exact` are exact."""
    slab = np.ascontiguousarray(volume[:, row:row + 1, :])
    replay = ProgressiveVolume(slab.shape, slab.dtype, fill=fill)
    for k in exact:
        replay.write_slice(k, slab[k])
    return replay.array[:, 0, :].copy()


def refinement_planes(volume: np.ndarray, levels: Sequence[int] = DEFAULT_LEVELS,
                      fill: str = "linear") -> List[Tuple[str, np.ndarray]]:
    """(title, plane through the middle row) at one exact slice (covered), at each level, and exact."""
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise ValueError(f"refinement planes need a (K, J, I) volume, not shape {volume.shape}")
    count, row = volume.shape[0], volume.shape[1] // 2
    planes = [("covered: 1 exact slice", replay_plane(volume, [count // 2], row, fill))]
    for level in levels:
        exact = range(0, count, level)
        planes.append((f"{level_name(level)}: {every_nth(level)} exact", replay_plane(volume, exact, row, fill)))
    planes.append(("exact", np.array(volume[:, row, :])))
    return planes
