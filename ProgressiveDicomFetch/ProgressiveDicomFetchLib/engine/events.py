"""What the engine reports to the main thread: series-level events and per-series progress.

Events follow the timeline contract of design.md: first_slice, covered, stage, complete, focus,
error (plus cancelled). A series with several volumes (stacks) is covered when all its volumes
are covered, complete when all are complete.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

FIRST_SLICE = "first_slice"
COVERED = "covered"
STAGE = "stage"
COMPLETE = "complete"
FOCUS = "focus"
ERROR = "error"
CANCELLED = "cancelled"
EVENT_KINDS = (FIRST_SLICE, COVERED, STAGE, COMPLETE, FOCUS, ERROR, CANCELLED)


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

    def to_json(self) -> Dict[str, object]:
        record: Dict[str, object] = {"t": round(self.t, 4), "series": self.series_uid, "event": self.event}
        for key in ("stage", "slice", "message"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.visible is not None:
            record["visible"] = list(self.visible)
        return record


# Series states, in the order a series normally goes through them.
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

    @property
    def covered_fraction(self) -> float:
        if not self.total_slices:
            return 0.0
        return 1.0 - self.counts.get("MISSING", 0) / self.total_slices

    @property
    def full_fraction(self) -> float:
        return self.counts.get("FULL", 0) / self.total_slices if self.total_slices else 0.0
