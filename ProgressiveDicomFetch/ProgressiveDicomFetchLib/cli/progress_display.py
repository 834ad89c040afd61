"""Terminal progress of a fetch: one bar per series with two fractions, and how coarse the volume is.

A small ANSI renderer rather than tqdm: a tqdm bar shows one fraction, and the point here is the
gap between "the volume is refined to every 8th slice or better" (light) and "every slice is exact"
(dark). "Covered" (no slice missing) is not shown: it comes after one exact slice copied everywhere.
Beside the bar, the level: 1/8, 1/4, 1/2, exact (every Nth slice exact), or the largest gap.
On a terminal the block of bars is redrawn in place, at most `max_rate_hz` times a second; on a
pipe or file (logs, CI) one line is printed each time a series changes state or stage.
"""
from __future__ import annotations

import os
import shutil
import time
from typing import IO, Callable, Dict, List, Optional, Sequence, Tuple

from ..engine.events import SeriesProgress

BAR_WIDTH = 24
LABEL_WIDTH = 28
LEVEL_WIDTH = 10  # padded to this, never cut
UNICODE_BAR = ("█", "▒", "·")  # full quality, within 1/8 of an exact slice, farther (or missing)
ASCII_BAR = ("#", "=", ".")


def format_bar(refined: float, full: float, width: int = BAR_WIDTH, glyphs: Tuple[str, str, str] = UNICODE_BAR) -> str:
    """`width` cells: full-quality cells, then refined-only cells (within 1/8), then the rest."""
    full_cells = round(max(0.0, min(full, 1.0)) * width)
    covered_cells = max(full_cells, round(max(0.0, min(refined, 1.0)) * width))
    return glyphs[0] * full_cells + glyphs[1] * (covered_cells - full_cells) + glyphs[2] * (width - covered_cells)


def series_name(snapshot: SeriesProgress, width: int = LABEL_WIDTH) -> str:
    """The label (cut at the end), or the UID (cut at the start: UIDs differ in their last digits)."""
    if snapshot.label:
        return _fit(snapshot.label, width)
    uid = snapshot.series_uid
    return uid if len(uid) <= width else "~" + uid[len(uid) - width + 1:]


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "~"


def _details(snapshot: SeriesProgress) -> str:
    text = snapshot.state
    if snapshot.stage and snapshot.state not in ("complete", "failed", "cancelled"):
        text += f" {snapshot.stage}"
    if snapshot.error:
        text += f": {snapshot.error}"
    return text


class ProgressDisplay:
    """`update(snapshots)` as often as you like; `close()` once at the end (draws the final state)."""

    def __init__(self, stream: IO[str], tty: Optional[bool] = None, max_rate_hz: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        if tty is None:
            tty = bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"
        self.tty = tty
        self.min_interval = 1.0 / max_rate_hz if max_rate_hz > 0 else 0.0
        self._clock = clock
        self._glyphs = UNICODE_BAR if _can_encode(stream, "".join(UNICODE_BAR)) else ASCII_BAR
        self._last_draw: Optional[float] = None
        self._drawn_lines = 0  # TTY: height of the block currently on screen
        self._pending: Optional[List[SeriesProgress]] = None
        self._reported: Dict[str, Tuple[str, Optional[str], Optional[int]]] = {}  # non-TTY: (state, stage, level) printed
        self._closed = False

    def update(self, snapshots: Sequence[SeriesProgress]) -> None:
        if self._closed:
            return
        if not self.tty:
            self._print_changes(snapshots)
            return
        self._pending = list(snapshots)
        now = self._clock()
        if self._last_draw is None or now - self._last_draw >= self.min_interval:
            self._redraw(now)

    def close(self) -> None:
        if self._closed:
            return
        if self.tty and self._pending is not None:
            self._redraw(self._clock())
        self._closed = True
        self.stream.flush()

    def line(self, snapshot: SeriesProgress, width: Optional[int] = None) -> str:
        """One series: name, bar, level, full %, state and stage, MB received."""
        bar = format_bar(snapshot.refined_fraction, snapshot.full_fraction, glyphs=self._glyphs)
        text = (f"{series_name(snapshot):<{LABEL_WIDTH}} |{bar}| "
                f"{snapshot.level_text:<{LEVEL_WIDTH}} full {snapshot.full_fraction:4.0%} "
                f"{snapshot.bytes / 1e6:7.1f} MB  {_details(snapshot)}")
        return text if width is None else _fit(text, width)

    def _redraw(self, now: float) -> None:
        snapshots = self._pending or []
        width = max(shutil.get_terminal_size((100, 24)).columns - 1, 20)  # never wrap: it breaks the cursor moves
        parts = []
        if self._drawn_lines:
            parts.append(f"\r\x1b[{self._drawn_lines}A")  # back to the top of the block
        parts += [f"\x1b[2K{self.line(s, width)}\n" for s in snapshots]
        parts.append("\x1b[J")  # clear what is left below if the block got shorter
        self.stream.write("".join(parts))
        self.stream.flush()
        self._drawn_lines = len(snapshots)
        self._last_draw = now

    def _print_changes(self, snapshots: Sequence[SeriesProgress]) -> None:
        changed = False
        for snapshot in snapshots:
            key = (snapshot.state, snapshot.stage, snapshot.level)
            if self._reported.get(snapshot.series_uid) != key:
                self._reported[snapshot.series_uid] = key
                self.stream.write(self.line(snapshot) + "\n")
                changed = True
        if changed:
            self.stream.flush()


def _can_encode(stream: IO[str], text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
