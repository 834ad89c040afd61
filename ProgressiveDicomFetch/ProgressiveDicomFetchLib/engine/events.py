"""What the engine reports to the main thread: series-level events and per-series progress.

Events follow the timeline contract of design.md: first_slice, covered, stage, complete, focus,
error (plus cancelled), extended by coarse (every 8th / 4th / 2nd slice exact, with its `level`). A series with several volumes (stacks) is covered when all its volumes
are covered, complete when all are complete.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ..volume import Coarseness, describe

FIRST_SLICE = "first_slice"
COVERED = "covered"
STAGE = "stage"
COMPLETE = "complete"
FOCUS = "focus"
ERROR = "error"
CANCELLED = "cancelled"
COARSE = "coarse"
EVENT_KINDS = (FIRST_SLICE, COVERED, STAGE, COMPLETE, FOCUS, ERROR, CANCELLED, COARSE)


@dataclass(frozen=True)
class EngineEvent:
    """One thing that happened to a series, `t` seconds after the engine started."""

    t: float
    series_uid: str
    event: str
    stage: Optional[str] = None  # STAGE: the stage id that finished (e.g. "every-8")
    slice: Optional[int] = None  # FOCUS: the viewed slice, if known
    message: Optional[str] = None  # ERROR: what went wrong
    visible: Optional[Tuple[str, ...]] = None  # FOCUS: every series on screen, the last touched first
    level: Optional[int] = None  # COARSE: every `level`-th slice is now exact (8, 4, 2)

    def to_json(self) -> Dict[str, object]:
        record: Dict[str, object] = {"t": round(self.t, 4), "series": self.series_uid, "event": self.event}
        for key in ("stage", "slice", "message", "level"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.visible is not None:
            record["visible"] = list(self.visible)
        return record


# Series states, in the order a series normally goes through them. "covered" is the state once
# every 8th slice is exact (the COARSE event of level 8), not at the COVERED event, which comes
# after one exact slice (the fill copies it everywhere): a display must not say "covered" then.
WAITING, METADATA, LOADING, COVERED_STATE, COMPLETE_STATE = "waiting", "metadata", "loading", "covered", "complete"
CANCELLED_STATE, FAILED = "cancelled", "failed"


@dataclass(frozen=True)
class SeriesProgress:
    """A snapshot of one series for progress displays (panel rows, terminal bars)."""

    series_uid: str
    label: str  # e.g. "3: AXIAL 7.5mm" (SeriesNumber: SeriesDescription)
    total_slices: int  # slices of all its volumes (0 until the metadata is in)
    counts: Dict[str, int] = field(default_factory=dict)  # Quality name -> number of slices
    stage: Optional[str] = None  # stage id in progress
    bytes: int = 0
    state: str = WAITING
    error: Optional[str] = None
    coarseness: Optional[Coarseness] = None  # how far apart the exact slices are (None: not known)
    slice_spacing_mm: Optional[float] = None  # of the first volume, for gaps in mm

    @property
    def level(self) -> Optional[int]:
        """1 exact, 2 / 4 / 8 every 2nd / 4th / 8th slice exact, None coarser (or nothing known)."""
        return None if self.coarseness is None else self.coarseness.level

    @property
    def refined_fraction(self) -> float:
        """Slices exact or at most 1/8 from an exact one: what the light part of a bar shows."""
        return 0.0 if self.coarseness is None else self.coarseness.refined_fraction

    @property
    def level_text(self) -> str:
        """"1/8", "1/4", "1/2", "exact", "gap 40 sl (60 mm)", "no exact slice, previews all", ..."""
        if self.coarseness is None or not self.coarseness.slices:
            return "no slice yet"
        return describe(self.coarseness, self.slice_spacing_mm)

    @property
    def covered_fraction(self) -> float:
        if not self.total_slices:
            return 0.0
        return 1.0 - self.counts.get("MISSING", 0) / self.total_slices

    @property
    def full_fraction(self) -> float:
        return self.counts.get("FULL", 0) / self.total_slices if self.total_slices else 0.0
