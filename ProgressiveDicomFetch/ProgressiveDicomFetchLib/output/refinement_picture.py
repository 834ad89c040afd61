"""A picture of a volume refining: one reformatted plane at each coarseness level beside the exact one.

People would rather look than read: "1/8" means little until one sees the plane across the slices
with every 8th slice exact and the rest filled. Each panel is made by the real volume model: the
exact slices of that level (k = 0, N, 2N, ...; first "one exact slice", the moment the volume is
covered) are written into a `ProgressiveVolume`, which fills the others as it does during a load.
The fill works along k, voxel by voxel, so replaying one row of voxels (j fixed) gives exactly the
plane the full volume would show, at 1/J of the memory. matplotlib is optional (imported here).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..volume import ProgressiveVolume, every_nth, level_name
from .atomic import PathLike, atomic_write
from .progress_plot import matplotlib_figure

FIGURE_DPI = 100
PANEL_WIDTH_IN = 3.0
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
    """(title, plane) at one exact slice (the middle: covered), at each level, and exact."""
    if volume.ndim != 3 or min(volume.shape) < 1:
        raise ValueError(f"a refinement picture needs a (K, J, I) volume, not shape {volume.shape}")
    count, row = volume.shape[0], volume.shape[1] // 2
    planes = [("covered: 1 exact slice", replay_plane(volume, [count // 2], row, fill))]
    for level in levels:
        planes.append((f"{level_name(level)}: {every_nth(level)} exact", replay_plane(volume, range(0, count, level), row, fill)))
    planes.append(("exact", np.array(volume[:, row, :])))
    return planes


def plot_refinement(volume: np.ndarray, path: PathLike, spacing_ik: Tuple[float, float] = (1.0, 1.0),
                    levels: Sequence[int] = DEFAULT_LEVELS, fill: str = "linear", title: str = "") -> Path:
    """A PNG with one panel per stage of refinement; k runs up, at its true aspect (`spacing_ik` mm)."""
    planes = refinement_planes(volume, levels, fill)
    exact = planes[-1][1]
    low, high = (float(v) for v in np.percentile(exact, [1.0, 99.0]))
    figure_class, canvas_class = matplotlib_figure()
    figure = figure_class(figsize=(PANEL_WIDTH_IN * len(planes), PANEL_WIDTH_IN + 0.8), dpi=FIGURE_DPI)
    canvas_class(figure)
    axes = figure.subplots(1, len(planes), squeeze=False)[0]
    aspect = spacing_ik[1] / spacing_ik[0] if spacing_ik[0] > 0 else 1.0
    for axis, (name, plane) in zip(axes, planes):
        axis.imshow(plane, cmap="gray", vmin=low, vmax=max(high, low + 1e-6), origin="lower", aspect=aspect,
                    interpolation="nearest")
        axis.set_title(name, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    target = Path(path)
    with atomic_write(target) as handle:
        figure.savefig(handle, format="png", dpi=FIGURE_DPI)
    return target
