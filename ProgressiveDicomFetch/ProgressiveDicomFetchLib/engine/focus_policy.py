"""The focus boost as data: what is on screen (the visible set) and how the connections are shared
among it (the policy). The scheduler reads both; see docs/focus.md for the defaults and figures.

Three tiers: the series in the view touched last, the other series shown in a visible view, and
the rest. Free connections go to the tiers in proportion to their shares (stride scheduling on
requests: deterministic, work-conserving: a tier with nothing ready gives its turn away); the
rest's share is what the other two leave (0 by default: it gets only connections they cannot use).
Before any boost, the coverage floor: every requested series' first coarse whole volume.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

from .stage_plan import StagePlan

LAST_TOUCHED, VISIBLE, REST = 0, 1, 2  # tiers, served in this order on ties
TIERS = (LAST_TOUCHED, VISIBLE, REST)

ViewedSlice = Tuple[int, float]  # (volume index, slice k) a view shows


@dataclass(frozen=True)
class Shown:
    """One series shown on screen, with the slices its views show (none: a 3D rendering)."""

    series: str
    slices: Tuple[ViewedSlice, ...] = ()


@dataclass(frozen=True)
class VisibleSet:
    """Every series on screen and the one touched last (None: no boost at all)."""

    shown: Tuple[Shown, ...] = ()
    last_touched: Optional[str] = None

    @classmethod
    def of(cls, shown: Sequence[Shown], last_touched: Optional[str] = None) -> "VisibleSet":
        """Merge repeats of a series (several views) in first-mention order; the last touched
        series is added when no view lists it."""
        merged: Dict[str, Tuple[ViewedSlice, ...]] = {}
        for item in shown:
            if not isinstance(item, Shown):
                raise ValueError(f"visible set entries must be Shown records, not {item!r}")
            slices = merged.get(item.series, ())
            merged[item.series] = slices + tuple(s for s in item.slices if s not in slices)
        if last_touched is not None and last_touched not in merged:
            merged = {last_touched: (), **merged}
        return cls(tuple(Shown(series, slices) for series, slices in merged.items()), last_touched)

    def tier(self, series: str) -> int:
        if series == self.last_touched:
            return LAST_TOUCHED
        return VISIBLE if any(item.series == series for item in self.shown) else REST

    def slices(self, series: str) -> Tuple[ViewedSlice, ...]:
        return next((item.slices for item in self.shown if item.series == series), ())

    def series(self) -> Tuple[str, ...]:
        """Last touched first, then the others in first-mention order."""
        others = tuple(item.series for item in self.shown if item.series != self.last_touched)
        return ((self.last_touched,) if self.last_touched is not None else ()) + others

    def __bool__(self) -> bool:
        return bool(self.shown)


@dataclass(frozen=True)
class FocusPolicy:
    """Shares of the free connections (fractions of the requests handed out while every tier has
    work ready). Defaults: the last touched series 0.9, the other visible ones 0.1 (split evenly),
    the rest what is left (0: connections the others cannot use). Why 0.9: on a rate-limited link
    each connection gets ~1/N of the rate, so the boosted series completes at ~1/share of its
    remaining bytes / rate; the design target is 1.15x. `connection_cap`: the last touched series
    holds at most this fraction of the connections while another series has work ready (the
    older `focus_share` setting). `coverage_floor`: see `floor_stage`."""

    last_touched_share: float = 0.9
    visible_share: float = 0.1
    connection_cap: float = 1.0
    coverage_floor: bool = True

    def __post_init__(self) -> None:
        for name in ("last_touched_share", "visible_share"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name.replace('_', ' ')} must be in [0, 1], not {value}")
        if self.last_touched_share <= 0:
            raise ValueError("last touched share must be above 0")
        if self.last_touched_share + self.visible_share > 1 + 1e-9:
            raise ValueError(f"shares add up to more than 1: {self.last_touched_share} + {self.visible_share}")
        if not 0 < self.connection_cap <= 1:
            raise ValueError(f"focus share must be in (0, 1], not {self.connection_cap}")

    @property
    def rest_share(self) -> float:
        return max(0.0, 1.0 - self.last_touched_share - self.visible_share)

    def share(self, tier: int) -> float:
        return (self.last_touched_share, self.visible_share, self.rest_share)[tier]


def floor_stage(plan: StagePlan) -> Optional[int]:
    """The last stage of a series' first coarse whole volume: the anchors and the first decimated
    full-quality stage (with in-plane previews, the preview stages come before it and belong to
    it). None for a plan without a coarse stage (one stage of everything): no floor."""
    if not plan.steps and not plan.anchors:
        return None
    return plan.preview_stages + (1 if plan.anchors else 0) + (0 if plan.steps else -1)
