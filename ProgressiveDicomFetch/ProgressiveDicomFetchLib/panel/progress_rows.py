"""One progress row per loading series, and status-bar messages from engine events.

The bar shows two things at once, as the terminal display does: how much of the volume is
covered (every slice shown, some filled from neighbours) and how much is at full quality. The
module gives a QProgressBar the covered percentage and the style sheet from `bar_style`, whose
chunk is dark up to the full-quality part and light beyond it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

from ..engine.events import (CANCELLED, CANCELLED_STATE, COMPLETE, COMPLETE_STATE, COVERED, ERROR, FAILED, FIRST_SLICE,
                             FOCUS, METADATA, WAITING, EngineEvent, SeriesProgress)
from ..volume import LOADED, Quality

FULL_COLOUR = "#2e7d32"  # full quality
COVERED_COLOUR = "#a5d6a7"  # covered, not yet exact
_FINAL_STATES = (COMPLETE_STATE, CANCELLED_STATE, FAILED)


@dataclass(frozen=True)
class ProgressRow:
    """What the panel's progress table shows for one series."""

    series_uid: str
    label: str
    covered_percent: int
    full_percent: int
    bar_text: str
    state_text: str
    can_cancel: bool
    bar_style: str


def _percent(fraction: float) -> int:
    """Rounded down, so 100 means really all (99.6% is not shown as complete)."""
    return max(0, min(100, int(fraction * 100)))


def bar_style(covered: float, full: float) -> str:
    """A QProgressBar style sheet: its chunk (as wide as `covered`) is dark for the `full` part."""
    edge = 1.0 if covered <= 0 else min(1.0, max(0.0, full / covered))
    after = min(1.0, edge + 0.001)
    return ("QProgressBar { text-align: center; } QProgressBar::chunk { background: qlineargradient("
            f"x1:0, y1:0, x2:1, y2:0, stop:0 {FULL_COLOUR}, stop:{edge:.3f} {FULL_COLOUR}, "
            f"stop:{after:.3f} {COVERED_COLOUR}, stop:1 {COVERED_COLOUR}); }}")


def real_fraction(snapshot: SeriesProgress) -> float:
    """Slices with their own pixels (reduced, lossy or exact), not filled from neighbours."""
    real = sum(snapshot.counts.get(q.name, 0) for q in Quality if q >= LOADED)
    return real / snapshot.total_slices if snapshot.total_slices else 0.0


def _state_text(snapshot: SeriesProgress) -> str:
    """As the node's name says it (scene/partial_marking.py): a stopped series states what is real."""
    real = f"{_percent(real_fraction(snapshot))}% real"
    if snapshot.state == FAILED:
        return f"failed ({real}): {snapshot.error}" if snapshot.error else f"failed ({real})"
    if snapshot.state == CANCELLED_STATE:
        return f"cancelled ({real})"
    if snapshot.state in (WAITING, METADATA, COMPLETE_STATE):
        return {WAITING: "waiting", METADATA: "reading metadata", COMPLETE_STATE: "complete"}[snapshot.state]
    return f"{snapshot.state} ({snapshot.stage})" if snapshot.stage else snapshot.state


def progress_row(snapshot: SeriesProgress, label: Optional[str] = None) -> ProgressRow:
    """The row for one engine snapshot; `label` overrides the engine's "number: description"."""
    covered, full = snapshot.covered_fraction, snapshot.full_fraction
    megabytes = snapshot.bytes / 1e6
    text = f"full {_percent(full)}% · covered {_percent(covered)}% · {megabytes:.1f} MB"
    return ProgressRow(series_uid=snapshot.series_uid, label=label or snapshot.label or snapshot.series_uid,
                       covered_percent=_percent(covered), full_percent=_percent(full), bar_text=text,
                       state_text=_state_text(snapshot), can_cancel=snapshot.state not in _FINAL_STATES,
                       bar_style=bar_style(covered, full))


def changed_rows(shown: Sequence[ProgressRow], rows: Sequence[ProgressRow]) -> List[int]:
    """Indexes of the rows that differ from what the table shows: the panel sets items and style
    sheets for those only (a style sheet per row per tick made the table the tick's main cost)."""
    return [index for index, row in enumerate(rows) if index >= len(shown) or shown[index] != row]


def status_message(event: EngineEvent, labels: Mapping[str, str]) -> Optional[str]:
    """A line for Slicer's status bar, or None for events too frequent to show (stages)."""
    name = labels.get(event.series_uid) or event.series_uid
    if event.event == FIRST_SLICE:
        return f"{name}: first slice after {event.t:.1f} s"
    if event.event == COVERED:
        return f"{name}: whole volume shown after {event.t:.1f} s (refining)"
    if event.event == COMPLETE:
        return f"{name}: complete and exact after {event.t:.1f} s"
    if event.event == FOCUS:
        return f"{name}: in view, loading it first"
    if event.event == ERROR:
        return f"{name} failed: {event.message}"
    if event.event == CANCELLED:
        return f"{name}: cancelled ({event.message})" if event.message else f"{name}: cancelled"
    return None
