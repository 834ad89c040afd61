"""Terminal progress: two-fraction bars with the coarseness level, in-place redraw on a TTY
(rate-limited), one line per change of state, stage or level otherwise."""
from __future__ import annotations

import io

import numpy as np
import pytest

from ProgressiveDicomFetchLib.cli.progress_display import ASCII_BAR, BAR_WIDTH, ProgressDisplay, format_bar
from ProgressiveDicomFetchLib.engine.events import SeriesProgress
from ProgressiveDicomFetchLib.volume import Quality, coarseness

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)

A, B = "1.2.3.1", "1.2.3.2"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def snapshots(full_a=0, filled_a=0, state_a="loading", stage_a="every-8", state_b="waiting", step=None):
    """Series A: 100 slices, `full_a` exact ones (every `step`-th from 0, else the first ones),
    then `filled_a` FILLED ones, the rest MISSING."""
    total = 100
    qualities = np.full(total, Quality.MISSING, np.int8)
    exact = list(range(0, total, step))[:full_a] if step else list(range(full_a))
    qualities[exact] = Quality.FULL
    others = [k for k in range(total) if k not in exact][:filled_a]
    qualities[others] = Quality.FILLED
    counts = {"FULL": full_a, "FILLED": filled_a, "MISSING": total - full_a - filled_a}
    return [SeriesProgress(A, "3: AXIAL 1mm", total, counts, stage=stage_a, bytes=2_500_000, state=state_a,
                           coarseness=coarseness(qualities), slice_spacing_mm=1.25),
            SeriesProgress(B, "", 0, state=state_b)]


def test_bar_shows_full_then_refined_then_the_rest():
    assert format_bar(1.0, 0.5, width=10, glyphs=ASCII_BAR) == "#####====="
    assert format_bar(0.5, 0.0, width=10, glyphs=ASCII_BAR) == "=====....."
    assert format_bar(0.0, 0.0, width=4, glyphs=ASCII_BAR) == "...."
    assert format_bar(0.2, 0.6, width=10, glyphs=ASCII_BAR) == "######...."  # covered is never less than full
    assert len(format_bar(0.33, 0.1)) == BAR_WIDTH


def test_line_shows_label_level_fractions_state_stage_and_megabytes():
    display = ProgressDisplay(io.StringIO(), tty=False)
    line = display.line(snapshots(full_a=40, filled_a=60)[0])  # slices 0..39 exact, 40..99 filled
    assert "3: AXIAL 1mm" in line and "gap 60 sl (76 mm)" in line and "full  40%" in line
    assert "covered" not in line and "100%" not in line
    assert "loading every-8" in line and "2.5 MB" in line
    line = display.line(snapshots(full_a=13, filled_a=87, step=8)[0])  # every 8th exact: the whole bar is light
    assert "1/8 " in line and "full  13%" in line and "|███" in line and "·" not in line
    assert B in display.line(snapshots()[1]), "a series without a label is shown by its UID"
    long_uid = "1.2.826.0.1.3680043.8.498." + "1234567890" * 3
    assert "~" + long_uid[-27:] + " |" in display.line(SeriesProgress(long_uid, "", 0)), "the UID's distinctive end is kept"


def test_not_a_tty_prints_one_line_per_change_of_state_or_stage():
    stream = io.StringIO()
    display = ProgressDisplay(stream, tty=False)
    display.update(snapshots(full_a=10, filled_a=20))
    display.update(snapshots(full_a=11, filled_a=25))  # same state, stage and level: nothing new
    display.update(snapshots(full_a=13, filled_a=87, step=8))  # level 1/8 reached: a line
    display.update(snapshots(full_a=30, filled_a=70, state_a="covered", stage_a="every-4", step=4))
    display.update(snapshots(full_a=100, state_a="complete", stage_a=None, state_b="failed"))
    display.close()
    lines = stream.getvalue().splitlines()
    assert "\x1b" not in stream.getvalue()
    assert len(lines) == 6
    assert "3: AXIAL 1mm" in lines[0] and "gap 90 sl (114 mm)" in lines[0] and "full  10%" in lines[0]
    assert A not in lines[0] and B in lines[1] and "waiting" in lines[1]
    assert "1/8 " in lines[2] and "full  13%" in lines[2]
    assert "covered every-4" in lines[3] and "1/4 " in lines[3]
    assert "complete" in lines[4] and "full 100%" in lines[4] and "exact " in lines[4]
    assert B in lines[5] and "failed" in lines[5]


def test_tty_redraws_in_place_at_most_ten_times_a_second():
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay(stream, tty=True, clock=clock)
    display.update(snapshots(full_a=10))
    first = stream.getvalue()
    assert first.count("\n") == 2 and "\x1b[2K" in first and "\x1b[2A" not in first
    for step in range(1, 20):  # 19 updates within 95 ms: none drawn
        clock.now = step * 0.005
        display.update(snapshots(full_a=10 + step))
    assert stream.getvalue() == first
    clock.now = 0.1
    display.update(snapshots(full_a=50, filled_a=50, state_a="covered", step=2))
    redraw = stream.getvalue()[len(first):]
    assert redraw.startswith("\r\x1b[2A"), "the block is redrawn over itself"
    assert "full  50%" in redraw and "1/2 " in redraw
    clock.now = 0.15
    display.update(snapshots(full_a=100, state_a="complete"))  # too soon: drawn by close()
    assert stream.getvalue()[len(first):] == redraw
    display.close()
    final = stream.getvalue()[len(first) + len(redraw):]
    assert "full 100%" in final and "complete" in final and final.startswith("\r\x1b[2A")
    display.update(snapshots())  # after close: ignored
    assert stream.getvalue().endswith(final)


def test_tty_lines_never_wrap_and_unicode_falls_back_to_ascii(monkeypatch):
    import os
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: os.terminal_size((40, 10)))
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    display = ProgressDisplay(stream, tty=True)
    display.update(snapshots(full_a=50, filled_a=20))
    display.close()
    stream.flush()
    text = raw.getvalue().decode("ascii")
    for line in text.split("\n")[:-1]:
        assert len(line.split("\x1b[2K")[-1]) <= 39
    assert "#" in text


def test_tty_detection_follows_the_stream():
    assert ProgressDisplay(io.StringIO()).tty is False
