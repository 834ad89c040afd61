"""The `--timeline` record of a fetch: when each series showed its first slice, was covered, finished
each stage and completed, and how many bytes it took (the JSON contract is in design.md).

`covered_s` keeps its meaning (no slice missing: possibly one exact slice copied everywhere);
`coarse_s` adds when every 8th / 4th / 2nd slice was exact ({"8": t, "4": t, "2": t}, from the
`coarse` events), which is how coarse the volume really was (docs/progress.md).

A milestone a series never reached (an error, an interrupted command) is `null` in the JSON, so
a benchmark can tell "never" from "at 0 s". `cancelled` is not an event kind of the contract: it
is recorded as an `error` event with the message "cancelled".
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

from ..files import PathLike, atomic_write
from .events import CANCELLED, COARSE, COMPLETE, COVERED, ERROR, FIRST_SLICE, STAGE, EngineEvent, SeriesProgress

MILESTONES = {FIRST_SLICE: "first_slice_s", COVERED: "covered_s", COMPLETE: "complete_s"}
COARSE_LEVELS = (8, 4, 2)  # the keys of `coarse_s`, coarsest first


def _seconds(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


@dataclass
class SeriesRecord:
    """What the timeline knows of one series; milestone times are None until reached."""

    slices: int = 0
    bytes: int = 0
    first_slice_s: Optional[float] = None
    covered_s: Optional[float] = None
    complete_s: Optional[float] = None
    stages: Dict[str, float] = field(default_factory=dict)  # stage id -> when the series finished it
    coarse_s: Dict[int, float] = field(default_factory=dict)  # level -> when every level-th slice was exact
    frame_times_ms: Optional[List[float]] = None  # a cine's frame times (an extension: only when known)

    def to_json(self) -> Dict[str, object]:
        record: Dict[str, object] = {
            "slices": self.slices, "bytes": self.bytes, "first_slice_s": _seconds(self.first_slice_s),
            "covered_s": _seconds(self.covered_s), "complete_s": _seconds(self.complete_s),
            "stages": {stage: _seconds(t) for stage, t in self.stages.items()},
            "coarse_s": {str(level): _seconds(self.coarse_s.get(level)) for level in COARSE_LEVELS}}
        if self.frame_times_ms:
            record["frame_times_ms"] = list(self.frame_times_ms)
        return record


class Timeline:
    """Collects engine events and byte/slice counts; `to_json()` / `write()` give the contract's JSON.

    Events are appended by the main thread; counts may come from any thread (a lock guards them).
    `start` is the command's start (`clock()` time); event times, relative to the engine's start,
    are shifted by `event_offset_s` when the engine started later than the command.
    """

    def __init__(self, start: Optional[float] = None, event_offset_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.start = clock() if start is None else start
        self.event_offset_s = event_offset_s
        self.events: List[EngineEvent] = []
        self.series: Dict[str, SeriesRecord] = {}  # in order of first mention
        self.other_bytes = 0  # received but not attributable to one series (e.g. searches)
        self.total_s: Optional[float] = None  # set by finish()
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return self._clock() - self.start

    def add_series(self, series_uid: str) -> SeriesRecord:
        """Register a requested series so that it appears even if nothing ever happens to it."""
        with self._lock:
            return self._record(series_uid)

    def append(self, event: EngineEvent) -> None:
        t = event.t + self.event_offset_s
        if event.event == CANCELLED:
            event = EngineEvent(t, event.series_uid, ERROR, message=event.message or "cancelled")
        elif self.event_offset_s:
            event = dataclasses.replace(event, t=t)
        with self._lock:
            self.events.append(event)
            record = self._record(event.series_uid)
            attribute = MILESTONES.get(event.event)
            if attribute and getattr(record, attribute) is None:
                setattr(record, attribute, t)
            elif event.event == STAGE and event.stage is not None:
                record.stages.setdefault(event.stage, t)
            elif event.event == COARSE and event.level is not None:
                record.coarse_s.setdefault(event.level, t)

    def extend(self, events: Iterable[EngineEvent]) -> None:
        for event in events:
            self.append(event)

    def add_bytes(self, series_uid: Optional[str], n: int) -> None:
        """`n` more body bytes received for a series (None: for no single series)."""
        with self._lock:
            if series_uid is None:
                self.other_bytes += n
            else:
                self._record(series_uid).bytes += n

    def set_bytes(self, series_uid: str, n: int) -> None:
        with self._lock:
            self._record(series_uid).bytes = n

    def set_slices(self, series_uid: str, n: int) -> None:
        with self._lock:
            self._record(series_uid).slices = n

    def observe(self, snapshots: Iterable[SeriesProgress]) -> None:
        """Take slices and bytes from the engine's progress snapshots (its own running totals)."""
        for snapshot in snapshots:
            with self._lock:
                record = self._record(snapshot.series_uid)
                record.bytes = snapshot.bytes
                if snapshot.total_slices:
                    record.slices = snapshot.total_slices

    def finish(self, total_s: Optional[float] = None) -> float:
        """Stamp the total time (now, unless given); later calls keep the first stamp."""
        if self.total_s is None:
            self.total_s = self.elapsed() if total_s is None else total_s
        return self.total_s

    @property
    def bytes(self) -> int:
        return self.other_bytes + sum(record.bytes for record in self.series.values())

    def to_json(self) -> Dict[str, object]:
        total = self.total_s if self.total_s is not None else self.elapsed()
        with self._lock:
            return {"total_s": round(total, 4), "bytes": self.bytes,
                    "series": {uid: record.to_json() for uid, record in self.series.items()},
                    "events": [event.to_json() for event in self.events]}

    def write(self, path: PathLike) -> None:
        """The JSON, atomically (a reader never sees half a file)."""
        document = self.to_json()
        with atomic_write(path, text=True) as handle:
            json.dump(document, handle, indent=1)
            handle.write("\n")

    def summary(self) -> List[str]:
        """One line per series for the command's final print: first slice, every 8th slice exact, complete."""
        def when(value: Optional[float]) -> str:
            return "never" if value is None else f"{value:.2f} s"

        lines = []
        with self._lock:
            for uid, record in self.series.items():
                lines.append(f"{uid}: {record.slices} slices, {record.bytes / 1e6:.1f} MB; first slice "
                             f"{when(record.first_slice_s)}, every 8th exact {when(record.coarse_s.get(8))}, "
                             f"complete {when(record.complete_s)}")
        total = self.total_s if self.total_s is not None else self.elapsed()
        lines.append(f"total {total:.2f} s, {self.bytes / 1e6:.1f} MB")
        return lines

    def _record(self, series_uid: str) -> SeriesRecord:
        record = self.series.get(series_uid)
        if record is None:
            record = self.series[series_uid] = SeriesRecord()
        return record
