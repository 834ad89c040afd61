"""What the engine reports to the main thread: series-level events and per-series progress.

Events follow the timeline contract (docs/architecture.md): first_slice, covered, stage, coarse
(every 8th / 4th / 2nd slice exact, with its `level`), complete, focus, error (plus cancelled). A
series with several volumes (stacks) is covered when all its volumes are covered, complete when
all are complete.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..loading import VolumeLoad
from ..volume import Coarseness, describe


class Word(str, enum.Enum):
    """A str Enum whose str() and format() are its value on every Python we support (3.9-3.12), so
    it can go wherever the contract's words went (JSON, messages, comparisons with strings)."""

    def __str__(self) -> str:
        return str(self.value)


class EventKind(Word):
    """What happened to a series; the values are the timeline contract's event words."""

    FIRST_SLICE = "first_slice"
    COVERED = "covered"
    STAGE = "stage"
    COMPLETE = "complete"
    FOCUS = "focus"
    ERROR = "error"
    CANCELLED = "cancelled"  # recorded in the timeline as an error "cancelled"
    COARSE = "coarse"  # every `level`-th slice is now exact (8, 4, 2)


class SeriesStatus(Word):
    """Where a series is, in the order a series normally goes through them. COVERED is the status
    once every 8th slice is exact (the COARSE event of level 8), not at the COVERED event, which
    comes after one exact slice (the fill copies it everywhere): a display must not say "covered"
    then."""

    WAITING = "waiting"
    METADATA = "metadata"
    LOADING = "loading"
    COVERED = "covered"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (SeriesStatus.COMPLETE, SeriesStatus.CANCELLED, SeriesStatus.FAILED)


@dataclass(frozen=True)
class EngineEvent:
    """One thing that happened to a series, `t` seconds after the engine started."""

    t: float
    series_uid: str
    event: EventKind  # a plain contract word is accepted and checked
    stage: Optional[str] = None  # STAGE: the stage id that finished (e.g. "every-8")
    slice: Optional[int] = None  # FOCUS: the viewed slice, if known
    message: Optional[str] = None  # ERROR: what went wrong
    visible: Optional[Tuple[str, ...]] = None  # FOCUS: every series on screen, the last touched first
    level: Optional[int] = None  # COARSE: every `level`-th slice is now exact (8, 4, 2)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event", EventKind(self.event))

    def to_json(self) -> Dict[str, object]:
        record: Dict[str, object] = {"t": round(self.t, 4), "series": self.series_uid, "event": self.event.value}
        for key in ("stage", "slice", "message", "level"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.visible is not None:
            record["visible"] = list(self.visible)
        return record


@dataclass(frozen=True)
class SeriesProgress:
    """A snapshot of one series for progress displays (panel rows, terminal bars)."""

    series_uid: str
    label: str  # e.g. "3: AXIAL 7.5mm" (SeriesNumber: SeriesDescription)
    total_slices: int  # slices of all its volumes (0 until the metadata is in)
    counts: Dict[str, int] = field(default_factory=dict)  # Quality name -> number of slices
    stage: Optional[str] = None  # stage id in progress
    bytes: int = 0
    state: SeriesStatus = SeriesStatus.WAITING
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", SeriesStatus(self.state))

    @property
    def covered_fraction(self) -> float:
        if not self.total_slices:
            return 0.0
        return 1.0 - self.counts.get("MISSING", 0) / self.total_slices

    @property
    def full_fraction(self) -> float:
        return self.counts.get("FULL", 0) / self.total_slices if self.total_slices else 0.0


@dataclass
class EngineUpdate:
    """What changed since the last `process_events()`: for the main thread to apply."""

    events: List[EngineEvent] = field(default_factory=list)
    new_volumes: List[Tuple[str, int, VolumeLoad]] = field(default_factory=list)  # geometry known, no pixel yet
    dirty: Dict[Tuple[str, int], List[int]] = field(default_factory=dict)  # (series, volume) -> slices k

    def __bool__(self) -> bool:
        return bool(self.events or self.new_volumes or self.dirty)
