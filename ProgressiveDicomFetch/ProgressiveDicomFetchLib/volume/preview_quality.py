"""How good is the preview? PSNR and mean absolute error of the filled volume at each stage.

Replays a coarse-to-fine stage plan over a known final volume through a real `ProgressiveVolume`
and compares the buffer (loaded + FILLED slices) with the final volume after every stage, for
linear and nearest fill. Errors are accumulated per slice and updated from `take_dirty()`, so
each stage costs O(changed slices) and no volume-sized float temporary is made.

PSNR = 10 log10(peak^2 / MSE) with peak = the width of a value range: by default the final
volume's own [min, max]; for CT pass `CT_HU_RANGE` ([-1024, 3071] HU, peak 4095), which makes
series comparable whatever their content. MSE 0 (exact) gives +inf.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .fill import FILL_MODES
from .progressive_volume import ProgressiveVolume
from .quality import Quality

#: The CT value range PSNR is usually quoted over (12-bit HU).
CT_HU_RANGE = (-1024.0, 3071.0)
DEFAULT_STEPS = (8, 4, 2)


@dataclass(frozen=True)
class Stage:
    """One pass of a stage plan: the slices it loads (none loaded by an earlier stage)."""

    name: str
    slices: Tuple[int, ...]


@dataclass(frozen=True)
class PreviewRow:
    """Preview quality after one stage, for one fill mode."""

    fill: str
    stage: str
    loaded: int
    fraction: float  # loaded slices / all slices
    psnr_db: float  # +inf when exact
    mae: float  # mean absolute error, in the volume's units (HU for CT)
    covered: bool


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def decimated_stages(num_slices: int, steps: Sequence[int] = DEFAULT_STEPS) -> List[Stage]:
    """The default plan: anchors (middle, first, last), every 8th, 4th, 2nd slice, then the rest."""
    taken: set = set()
    stages: List[Stage] = []

    def add(name: str, candidates) -> None:
        new = tuple(dict.fromkeys(k for k in candidates if k not in taken))
        taken.update(new)
        if new:
            stages.append(Stage(name, new))

    add("anchors", (num_slices // 2, 0, num_slices - 1))
    for step in steps:
        add(f"every {_ordinal(step)}", range(0, num_slices, step))
    add("rest", range(num_slices))
    return stages


def psnr_db(mse: float, peak: float) -> float:
    if mse <= 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


class _ErrorTally:
    """Per-slice squared and absolute error sums against the final volume."""

    def __init__(self, final: np.ndarray) -> None:
        self.final = final
        self.squared = np.zeros(final.shape[0])
        self.absolute = np.zeros(final.shape[0])
        self.voxels = final.size

    def update(self, current: np.ndarray, slices: Sequence[int]) -> None:
        for k in slices:
            diff = current[k].astype(np.float64) - self.final[k]
            self.squared[k] = float(np.dot(diff.ravel(), diff.ravel()))
            self.absolute[k] = float(np.abs(diff).sum())

    def mse(self) -> float:
        return float(self.squared.sum()) / self.voxels

    def mae(self) -> float:
        return float(self.absolute.sum()) / self.voxels


def simulate(
    final: np.ndarray,
    stages: Optional[Sequence[Stage]] = None,
    fill: str = "linear",
    value_range: Optional[Tuple[float, float]] = None,
) -> List[PreviewRow]:
    """Load `final` stage by stage (FULL slices) and measure the preview after each stage."""
    final = np.asarray(final)
    plan = list(stages) if stages is not None else decimated_stages(final.shape[0])
    low, high = value_range if value_range is not None else (float(final.min()), float(final.max()))
    peak = (high - low) or 1.0
    volume = ProgressiveVolume(final.shape, final.dtype, fill=fill)
    tally = _ErrorTally(final)
    tally.update(volume.array, range(final.shape[0]))  # all-zero start: MISSING slices count as errors
    rows: List[PreviewRow] = []
    for stage in plan:
        for k in stage.slices:
            volume.write_slice(k, final[k], Quality.FULL)
        tally.update(volume.array, volume.take_dirty())
        loaded = len(volume.loaded_slices())
        rows.append(PreviewRow(
            fill=fill, stage=stage.name, loaded=loaded, fraction=loaded / final.shape[0],
            psnr_db=psnr_db(tally.mse(), peak), mae=tally.mae(), covered=volume.covered,
        ))
    return rows


def compare_fills(
    final: np.ndarray,
    stages: Optional[Sequence[Stage]] = None,
    value_range: Optional[Tuple[float, float]] = None,
    fills: Sequence[str] = FILL_MODES,
) -> List[PreviewRow]:
    """`simulate` once per fill mode over the same plan; rows grouped by fill, in stage order."""
    return [row for fill in fills for row in simulate(final, stages, fill, value_range)]
