"""How coarse a volume really is: the largest run of slices that are not exact, and the level it gives.

"Covered" (no slice MISSING) comes after one exact slice: the fill copies it everywhere. What a
user wants to know is how far apart the exact slices are. A volume is at level N (every Nth slice
exact: 1/8, 1/4, 1/2; 1 = exact) when every run of non-FULL slices, between FULL ones and at both
ends, is shorter than N. That depends only on the gaps, never on which slices a stage plan chose
or what its stages are called. The same measure over slices with real pixels at any quality
(previews included) gives the preview level. Slices with no frame (gaps in the series itself) are
left out: nothing will ever make them exact. See docs/progress.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

from .quality import LOADED, Quality

#: The levels reported, finest first: every slice, every 2nd, 4th, 8th slice exact.
LEVELS: Tuple[int, ...] = (1, 2, 4, 8)
#: The coarsest level: slices farther than this from an exact one count as not yet refined.
COARSEST = LEVELS[-1]


def run_bounds(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(starts, stops) of the runs of True in a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], np.asarray(mask).astype(np.int8), [0]))))
    return edges[0::2], edges[1::2]


def _runs(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-D boolean array."""
    starts, stops = run_bounds(mask)
    return stops - starts


def level_of(gap: int) -> Optional[int]:
    """The finest level whose runs are all shorter than it (None: coarser than every 8th slice)."""
    return next((step for step in LEVELS if gap < step), None)


@dataclass(frozen=True)
class Coarseness:
    """The volume's coarseness now; `coarsest()` combines several volumes of one series."""

    slices: int  # slices that have a frame (the measure's denominator)
    gap: int  # longest run of non-FULL slices (ends included): 0 = exact, `slices` = no exact slice
    level: Optional[int]  # 1, 2, 4, 8 (every Nth slice exact) or None (coarser)
    refined: int  # slices that are FULL or in a run shorter than COARSEST (within 1/8 of exact)
    preview_gap: int  # longest run of slices without real pixels (previews count)
    preview_level: Optional[int]  # the same ladder for real pixels at any quality
    previews: int  # slices holding real pixels below FULL (in-plane previews, lossy)

    @property
    def refined_fraction(self) -> float:
        return self.refined / self.slices if self.slices else 0.0


def coarseness(qualities: np.ndarray, present: Optional[Sequence[bool]] = None) -> Coarseness:
    """The coarseness of per-slice `qualities`; `present` (one bool a slice) leaves out slices that
    have no frame. O(slices) in numpy: cheap enough to ask after every slice."""
    values = np.asarray(qualities)
    if present is not None:
        values = values[np.asarray(present, dtype=bool)]
    exact = values >= Quality.FULL
    runs = _runs(~exact)
    gap = int(runs.max()) if runs.size else 0
    real = values >= LOADED
    preview_runs = _runs(~real)
    preview_gap = int(preview_runs.max()) if preview_runs.size else 0
    refined = int(exact.sum()) + int(runs[runs < COARSEST].sum())
    return Coarseness(slices=int(values.size), gap=gap, level=level_of(gap), refined=refined,
                      preview_gap=preview_gap, preview_level=level_of(preview_gap),
                      previews=int((real & ~exact).sum()))


def coarsest(parts: Iterable[Coarseness]) -> Coarseness:
    """One series of several volumes is as coarse as its coarsest volume."""
    items = list(parts)
    if not items:
        return Coarseness(0, 0, None, 0, 0, None, 0)
    gap = max(c.gap for c in items)
    preview_gap = max(c.preview_gap for c in items)
    return Coarseness(slices=sum(c.slices for c in items), gap=gap, level=level_of(gap),
                      refined=sum(c.refined for c in items), preview_gap=preview_gap,
                      preview_level=level_of(preview_gap), previews=sum(c.previews for c in items))


def level_name(level: Optional[int]) -> str:
    """1 -> "exact", 8 -> "1/8" (every 8th slice exact), None -> "< 1/8"."""
    if level is None:
        return f"< 1/{COARSEST}"
    return "exact" if level == 1 else f"1/{level}"


def every_nth(level: int) -> str:
    """8 -> "every 8th slice", 2 -> "every 2nd slice", 1 -> "every slice"."""
    return "every slice" if level == 1 else f"every {level}{'nd' if level == 2 else 'th'} slice"


def describe(c: Coarseness, spacing_mm: Optional[float] = None) -> str:
    """What a progress display shows: "1/4", "exact", "gap 109 sl (164 mm)", plus the preview level
    while previews are finer than the exact slices ("previews 1/4", "previews all")."""
    if c.level is not None:
        text = level_name(c.level)
    elif c.gap >= c.slices:
        text = "no exact slice"
    else:
        mm = "" if not spacing_mm else f" ({(c.gap + 1) * spacing_mm:.0f} mm)"
        text = f"gap {c.gap} sl{mm}"
    finer = c.preview_level is not None and (c.level is None or c.preview_level < c.level)
    if c.previews and finer:
        text += ", previews " + ("all" if c.preview_level == 1 else f"1/{c.preview_level}")
    return text
