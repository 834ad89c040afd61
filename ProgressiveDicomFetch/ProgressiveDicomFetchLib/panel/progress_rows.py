"""One progress row per loading series, and status-bar messages from engine events.

The bar shows two things at once, as the terminal display does: how much of the volume is within
1/8 of an exact slice (light) and how much is at full quality (dark); its text leads with the
level (1/8, 1/4, 1/2, exact, or the largest gap). "Covered" (no slice missing) is not shown: it
comes after one exact slice copied into all the others. The module gives a QProgressBar
`bar_percent` and the style sheet from `bar_style`, whose chunk is dark up to the full part.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

from ..engine.events import (CANCELLED, CANCELLED_STATE, COARSE, COMPLETE, COMPLETE_STATE, COVERED_STATE, ERROR, FAILED,
                             FIRST_SLICE, FOCUS, METADATA, WAITING, EngineEvent, SeriesProgress)
from ..volume import LOADED, Quality, every_nth, level_name

FULL_COLOUR = "#2e7d32"  # full quality
COVERED_COLOUR = "#a5d6a7"  # within 1/8 of an exact slice, not yet exact
_FINAL_STATES = (COMPLETE_STATE, CANCELLED_STATE, FAILED)


@dataclass(frozen=True)
class ProgressRow:
    """What the panel's progress table shows for one series."""

    series_uid: str
    label: str
    covered_percent: int  # no slice missing (kept for scripts; not what the bar shows)
    full_percent: int
    bar_text: str
    state_text: str
    can_cancel: bool
    bar_style: str
    bar_percent: int = 0  # the bar's value: slices exact or within 1/8 of an exact one
    level: Optional[int] = None  # 1 exact, 2 / 4 / 8 every Nth slice exact, None coarser


def _percent(fraction: float) -> int:
    """Rounded down, so 100 means really all (99.6% is not shown as complete)."""
    return max(0, min(100, int(fraction * 100)))


def bar_style(refined: float, full: float) -> str:
    """A QProgressBar style sheet: its chunk (as wide as `refined`) is dark for the `full` part."""
    edge = 1.0 if refined <= 0 else min(1.0, max(0.0, full / refined))
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
    state = "refining" if snapshot.state == COVERED_STATE else snapshot.state
    return f"{state} ({snapshot.stage})" if snapshot.stage else state


def progress_row(snapshot: SeriesProgress, label: Optional[str] = None) -> ProgressRow:
    """The row for one engine snapshot; `label` overrides the engine's "number: description"."""
    refined, full = snapshot.refined_fraction, snapshot.full_fraction
    megabytes = snapshot.bytes / 1e6
    text = f"{snapshot.level_text} · full {_percent(full)}% · {megabytes:.1f} MB"
    return ProgressRow(series_uid=snapshot.series_uid, label=label or snapshot.label or snapshot.series_uid,
                       covered_percent=_percent(snapshot.covered_fraction), full_percent=_percent(full), bar_text=text,
                       state_text=_state_text(snapshot), can_cancel=snapshot.state not in _FINAL_STATES,
                       bar_style=bar_style(refined, full), bar_percent=_percent(refined), level=snapshot.level)


def changed_rows(shown: Sequence[ProgressRow], rows: Sequence[ProgressRow]) -> List[int]:
    """Indexes of the rows that differ from what the table shows: the panel sets items and style
    sheets for those only (a style sheet per row per tick made the table the tick's main cost)."""
    return [index for index, row in enumerate(rows) if index >= len(shown) or shown[index] != row]


def status_message(event: EngineEvent, labels: Mapping[str, str]) -> Optional[str]:
    """A line for Slicer's status bar, or None for events too frequent to show (stages) or that
    would mislead (covered: one exact slice copied everywhere)."""
    name = labels.get(event.series_uid) or event.series_uid
    if event.event == FIRST_SLICE:
        return f"{name}: first slice after {event.t:.1f} s"
    if event.event == COARSE and event.level is not None:
        return f"{name}: {every_nth(event.level)} exact ({level_name(event.level)}) after {event.t:.1f} s (refining)"
    if event.event == COMPLETE:
        return f"{name}: complete and exact after {event.t:.1f} s"
    if event.event == FOCUS:
        return f"{name}: in view, loading it first"
    if event.event == ERROR:
        return f"{name} failed: {event.message}"
    if event.event == CANCELLED:
        return f"{name}: cancelled ({event.message})" if event.message else f"{name}: cancelled"
    return None
