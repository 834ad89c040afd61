"""The coarseness level during real loads against Orthanc: it follows the stage plan (whatever the
plan, the level is about gaps), its events come in order, and no progress display (terminal bar,
panel row, status message, plot record) says "covered" or 100 % before every 8th slice is exact."""
from __future__ import annotations

import io
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from ProgressiveDicomFetchLib.cli.progress_display import ProgressDisplay
from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine, StagePlan
from ProgressiveDicomFetchLib.engine.series_state import SeriesState
from ProgressiveDicomFetchLib.output.progress_plot import ProgressRecorder
from ProgressiveDicomFetchLib.panel import progress_row, status_message
from ProgressiveDicomFetchLib.pixels.htj2k_preview import previews_available
from ProgressiveDicomFetchLib.volume import ProgressiveVolume, Quality, describe

KEY = "ct_thin"  # 80 slices


def load(orthanc, sample_small, plan: StagePlan, on_update, connections=2, key=KEY):
    info = sample_small.series(key)
    engine = ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url), connections=connections, plan=plan)
    events = []

    def collect(update):
        events.extend(update.events)
        on_update(engine, update)

    try:
        engine.add_series(info.study_uid, info.series_uid)
        assert engine.run_until_finished(collect, timeout=120)
    finally:
        assert engine.close()
    return engine, events


def first(events, kind, **where):
    found = [e.t for e in events if e.event == kind and all(getattr(e, k) == v for k, v in where.items())]
    assert found, (kind, where)
    return found[0]


LEVEL_ORDER = {None: 0, 8: 1, 4: 2, 2: 3, 1: 4}


@pytest.mark.compat
def test_levels_reached_together_are_reported_coarsest_first_and_once():
    volume = ProgressiveVolume((41, 2, 2), np.int16)
    frames = [object()] * 41
    frames[21] = None  # a slice with no frame: left out of the measure
    state = SeriesState("1.2", "1.2.3", loads=[SimpleNamespace(volume=volume, geometry=SimpleNamespace(slices=frames, spacing=(0.5, 0.5, 2.0)))])
    assert state.new_levels() == []
    volume.write_slice(0, np.zeros((2, 2), np.int16))
    assert state.check_covered() and state.state == "waiting"  # covered, but not called so
    for k in range(0, 41, 4):
        volume.write_slice(k, np.zeros((2, 2), np.int16))
    assert state.new_levels() == [8, 4] and state.state == "covered"
    assert state.new_levels() == []
    for k in range(41):
        if k != 21:
            volume.write_slice(k, np.zeros((2, 2), np.int16))
    assert state.new_levels() == [2] and state.levels == [8, 4, 2]
    assert state.progress().level_text == "exact"


@pytest.mark.parametrize("stages", ["anchors,8,4,2", "4,2", "anchors,16,2"])
def test_the_level_follows_the_stage_plan(orthanc, sample_small, stages):
    plan = StagePlan.parse(stages)
    seen = []
    engine, events = load(orthanc, sample_small, plan, lambda engine, update: seen.append(engine.progress()[0].level))
    assert [LEVEL_ORDER[level] for level in seen] == sorted(LEVEL_ORDER[level] for level in seen), "levels only refine"
    assert seen[-1] == 1 and engine.progress()[0].level_text == "exact"
    coarse = {e.level: e.t for e in events if e.event == "coarse"}
    assert [e.level for e in events if e.event == "coarse"] == [8, 4, 2], "each level once, coarsest first"
    covered, complete = first(events, "covered"), first(events, "complete")
    assert covered <= coarse[8] <= coarse[4] <= coarse[2] <= complete
    for step in plan.steps:  # once a plan's every-Nth stage is done, the level is N or finer ...
        stage_done = first(events, "stage", stage=f"every-{step}")
        for level in (8, 4, 2):
            if level >= step:
                assert coarse[level] <= stage_done, (level, step)
            else:  # ... and not before: the level is about gaps, an every-16th stage does not make 1/8
                assert coarse[level] > first(events, "stage", stage=f"every-{max(plan.steps)}"), (level, step)
    if plan.anchors:  # the anchors cover the volume long before every 8th slice is exact
        assert first(events, "stage", stage="anchors") < coarse[8]


@pytest.mark.parametrize("key", ["edge_gap", "edge_irregular"])
def test_slices_without_a_frame_do_not_keep_a_series_from_exact(orthanc, sample_small, key):
    engine, events = load(orthanc, sample_small, StagePlan(), lambda engine, update: None, key=key)
    (snapshot,) = engine.progress()
    assert snapshot.counts["FILLED"] > 0, "the grid has slices no frame fills"
    assert (snapshot.level, snapshot.level_text, snapshot.refined_fraction) == (1, "exact", 1.0)
    assert [e.level for e in events if e.event == "coarse"] == [8, 4, 2]


@pytest.mark.skipif(not previews_available(), reason="imagecodecs (HTJ2K) is not installed")
def test_previews_show_their_own_level_until_the_exact_slices_are_finer(static_server, sample_small):
    from test_in_plane_previews import HTJ2K_KEY, prepared_loads  # the previews' own test set-up

    info = sample_small.series(HTJ2K_KEY)
    (load,) = prepared_loads(DicomwebServer(static_server.dicomweb_url), info)
    texts, lock, original = [], threading.Lock(), load.volume.write_slice

    def write_slice(k, data, quality=Quality.FULL, reduction=1):  # the real write, then the level it left
        with lock:
            written = original(k, data, quality, reduction)
            if written:
                texts.append(describe(load.volume.coarseness()))
        return written

    load.volume.write_slice = write_slice
    engine = ProgressiveFetchEngine(DicomwebServer(static_server.dicomweb_url), connections=3)
    try:
        engine.add_series(info.study_uid, info.series_uid, loads=[load])
        assert engine.run_until_finished(timeout=120)
    finally:
        assert engine.close()
    seen = list(dict.fromkeys(texts))
    eighth = next(i for i, text in enumerate(seen) if text.startswith("1/8"))
    assert seen.index("no exact slice, previews 1/4") < seen.index("no exact slice, previews all") < eighth
    assert seen[eighth] == "1/8, previews all" and seen[-1] == "exact"
    assert engine.progress()[0].level_text == "exact"


def test_no_display_says_covered_or_100_percent_before_every_8th_slice_is_exact(orthanc, sample_small):
    info = sample_small.series(KEY)
    terminal = io.StringIO()
    display = ProgressDisplay(terminal, tty=False)
    recorder = ProgressRecorder()
    outputs = []  # (level, covered fraction, everything the displays showed)

    def on_update(engine, update):
        (snapshot,) = engine.progress()
        display.update([snapshot])
        recorder.sample(engine.elapsed(), [snapshot])
        row = progress_row(snapshot)
        sample = recorder.samples[-1]
        shown = [display.line(snapshot), row.bar_text, row.state_text, f"{row.bar_percent}%",
                 f"{round(100 * sample.coarse)}%"]
        shown += [m for m in (status_message(e, {info.series_uid: "CT"}) for e in update.events) if m]
        outputs.append((snapshot.level, snapshot.covered_fraction, shown))

    load(orthanc, sample_small, StagePlan(), on_update)
    display.close()
    early = [shown for level, _, shown in outputs if level is None]
    assert early and any(covered == 1.0 for level, covered, _ in outputs if level is None), \
        "the volume should be covered (one slice copied everywhere) well before every 8th slice is exact"
    for shown in early:
        assert not [text for text in shown if "covered" in text or "100%" in text or "whole volume" in text], shown
        assert shown[0].split("|")[1].endswith("·"), "the terminal bar is not whole before 1/8"
    refined = [shown for level, _, shown in outputs if level == 8]
    assert refined and all(shown[3] == "100%" for shown in refined), "at 1/8 the light bar is whole"
    lines = terminal.getvalue().splitlines()
    assert any("1/8 " in line for line in lines) and "exact " in lines[-1]
