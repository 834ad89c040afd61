"""A picture of a volume refining: one reformatted plane at each coarseness level beside the exact one.

People would rather look than read: "1/8" means little until one sees the plane across the slices
with every 8th slice exact and the rest filled. The planes come from the volume model
(volume/refinement.py); this draws them side by side, k running up at its true aspect, all on the
exact plane's grey scale. matplotlib is optional (imported when drawing).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple

import numpy as np

from ..files import PathLike, atomic_write
from .progress_plot import matplotlib_figure

FIGURE_DPI = 100
PANEL_WIDTH_IN = 3.0


def plot_refinement(planes: Sequence[Tuple[str, np.ndarray]], path: PathLike, spacing_ik: Tuple[float, float] = (1.0, 1.0),
                    title: str = "") -> Path:
    """A PNG with one panel per (title, (K, I) plane), the last being the exact one; `spacing_ik` in mm."""
    if not planes:
        raise ValueError("a refinement picture needs at least one plane")
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
