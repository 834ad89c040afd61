"""The --timeline JSON: exactly the keys and types of design.md's contract, nulls for milestones
never reached, stage times, offsets, and an atomic write that round-trips through json."""
from __future__ import annotations

import json
import os

import pytest

from ProgressiveDicomFetchLib.engine.events import (CANCELLED, COARSE, COMPLETE, COVERED, ERROR, FIRST_SLICE, FOCUS,
                                                    STAGE, EngineEvent, SeriesProgress)
from ProgressiveDicomFetchLib.engine.timeline import Timeline

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)

A, B, C = "1.2.3.1", "1.2.3.2", "1.2.3.3"
CONTRACT_EVENTS = {FIRST_SLICE, COVERED, STAGE, COMPLETE, FOCUS, ERROR}
CONTRACT_SERIES_KEYS = {"slices", "bytes", "first_slice_s", "covered_s", "complete_s", "stages"}


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sample_timeline() -> Timeline:
    clock = Clock()
    timeline = Timeline(clock=clock)
    for uid in (A, B, C):
        timeline.add_series(uid)
    timeline.extend([
        EngineEvent(0.20, A, FIRST_SLICE), EngineEvent(0.25, B, FIRST_SLICE),
        EngineEvent(0.30, A, STAGE, stage="anchors"), EngineEvent(0.31, A, COVERED),
        EngineEvent(0.90, A, STAGE, stage="every-8"), EngineEvent(0.90, A, COARSE, level=8),
        EngineEvent(1.20, A, COARSE, level=4), EngineEvent(1.50, B, FOCUS, slice=40),
        EngineEvent(1.80, A, COARSE, level=2), EngineEvent(1.90, A, COARSE, level=2),  # the first time wins
        EngineEvent(2.00, B, ERROR, message="HTTP 503"), EngineEvent(2.10, A, STAGE, stage="rest"),
        EngineEvent(2.10, A, COMPLETE),
    ])
    timeline.set_slices(A, 20)
    timeline.set_slices(B, 200)
    timeline.add_bytes(A, 1000)
    timeline.add_bytes(A, 500)
    timeline.add_bytes(B, 250)
    timeline.add_bytes(None, 40)  # searches, not one series
    clock.now += 2.5
    timeline.finish()
    return timeline


def check_contract(document: dict) -> None:
    """design.md's keys and types, extended (never broken) by `coarse_s` and `coarse` events."""
    assert set(document) == {"total_s", "bytes", "series", "events"}
    assert isinstance(document["total_s"], float) and isinstance(document["bytes"], int)
    for uid, series in document["series"].items():
        assert isinstance(uid, str)
        assert set(series) == CONTRACT_SERIES_KEYS | {"coarse_s"}
        assert list(series["coarse_s"]) == ["8", "4", "2"]
        assert all(t is None or isinstance(t, float) for t in series["coarse_s"].values())
        assert isinstance(series["slices"], int) and isinstance(series["bytes"], int)
        for key in ("first_slice_s", "covered_s", "complete_s"):
            assert series[key] is None or isinstance(series[key], float)
        assert all(isinstance(k, str) and isinstance(v, float) for k, v in series["stages"].items())
    for event in document["events"]:
        assert isinstance(event["t"], float) and isinstance(event["series"], str)
        assert event["event"] in CONTRACT_EVENTS | {COARSE}
        assert (event["event"] == COARSE) == isinstance(event.get("level"), int)
    assert [e["t"] for e in document["events"]] == sorted(e["t"] for e in document["events"])


def test_contract_keys_types_milestones_and_nulls():
    document = sample_timeline().to_json()
    check_contract(document)
    assert document["total_s"] == 2.5
    assert document["bytes"] == 1000 + 500 + 250 + 40
    assert list(document["series"]) == [A, B, C]
    never = {"8": None, "4": None, "2": None}
    assert document["series"][A] == {"slices": 20, "bytes": 1500, "first_slice_s": 0.2, "covered_s": 0.31,
                                     "complete_s": 2.1, "stages": {"anchors": 0.3, "every-8": 0.9, "rest": 2.1},
                                     "coarse_s": {"8": 0.9, "4": 1.2, "2": 1.8}}
    assert document["series"][B] == {"slices": 200, "bytes": 250, "first_slice_s": 0.25, "covered_s": None,
                                      "complete_s": None, "stages": {}, "coarse_s": never}
    assert document["series"][C] == {"slices": 0, "bytes": 0, "first_slice_s": None, "covered_s": None,
                                      "complete_s": None, "stages": {}, "coarse_s": never}
    events = document["events"]
    assert len(events) == 13
    assert {"t": 1.2, "series": A, "event": "coarse", "level": 4} in events
    assert events[0] == {"t": 0.2, "series": A, "event": "first_slice"}
    assert {"t": 0.3, "series": A, "event": "stage", "stage": "anchors"} in events
    assert {"t": 1.5, "series": B, "event": "focus", "slice": 40} in events
    assert {"t": 2.0, "series": B, "event": "error", "message": "HTTP 503"} in events


def test_first_time_wins_and_cancelled_is_an_error_event():
    timeline = Timeline(clock=Clock())
    timeline.extend([EngineEvent(1.0, A, FIRST_SLICE), EngineEvent(2.0, A, FIRST_SLICE),
                     EngineEvent(3.0, A, STAGE, stage="every-4"), EngineEvent(4.0, A, STAGE, stage="every-4"),
                     EngineEvent(5.0, A, CANCELLED)])
    document = timeline.to_json()
    check_contract(document)
    assert document["series"][A]["first_slice_s"] == 1.0
    assert document["series"][A]["stages"] == {"every-4": 3.0}
    assert document["events"][-1] == {"t": 5.0, "series": A, "event": "error", "message": "cancelled"}


def test_event_offset_shifts_engine_times_to_command_times():
    timeline = Timeline(clock=Clock(), event_offset_s=0.5)
    timeline.append(EngineEvent(1.0, A, COVERED))
    timeline.append(EngineEvent(2.0, A, FOCUS, slice=3))
    timeline.append(EngineEvent(2.5, A, COARSE, level=8))
    document = timeline.to_json()
    assert document["series"][A]["covered_s"] == 1.5
    assert document["series"][A]["coarse_s"]["8"] == 3.0
    assert [e["t"] for e in document["events"]] == [1.5, 2.5, 3.0]
    assert document["events"][1]["slice"] == 3 and document["events"][2]["level"] == 8


def test_total_is_live_until_finished_then_fixed():
    clock = Clock()
    timeline = Timeline(clock=clock)
    clock.now += 1.25
    assert timeline.to_json()["total_s"] == 1.25
    assert timeline.finish() == 1.25
    clock.now += 10
    assert timeline.finish() == 1.25 and timeline.to_json()["total_s"] == 1.25


def test_observe_takes_slices_and_bytes_from_progress_snapshots():
    timeline = Timeline(clock=Clock())
    timeline.observe([SeriesProgress(A, "1: CT", 0, bytes=10)])
    timeline.observe([SeriesProgress(A, "1: CT", 120, {"FULL": 3, "MISSING": 117}, bytes=3000),
                      SeriesProgress(B, "2: CT", 50)])
    series = timeline.to_json()["series"]
    assert (series[A]["slices"], series[A]["bytes"]) == (120, 3000)
    assert (series[B]["slices"], series[B]["bytes"]) == (50, 0)


def test_write_is_atomic_and_round_trips(tmp_path, monkeypatch):
    timeline = sample_timeline()
    path = tmp_path / "timeline.json"
    timeline.write(path)
    assert os.listdir(tmp_path) == ["timeline.json"]
    loaded = json.loads(path.read_text(encoding="utf-8"))
    check_contract(loaded)
    assert loaded == timeline.to_json()

    def broken(*args, **kwargs):
        raise TypeError("not serialisable")

    monkeypatch.setattr(json, "dump", broken)
    with pytest.raises(TypeError):
        timeline.write(path)
    assert os.listdir(tmp_path) == ["timeline.json"] and json.loads(path.read_text(encoding="utf-8")) == loaded


def test_summary_names_every_series_and_never_reached_milestones():
    lines = sample_timeline().summary()
    assert len(lines) == 4
    assert lines[0].startswith(A) and "first slice 0.20 s" in lines[0] and "complete 2.10 s" in lines[0]
    assert "every 8th exact 0.90 s" in lines[0] and "covered" not in lines[0]  # covered (0.31 s) would mislead
    assert lines[1].startswith(B) and "every 8th exact never" in lines[1] and "complete never" in lines[1]
    assert lines[2].startswith(C) and "first slice never" in lines[2]
    assert lines[3].startswith("total 2.50 s")


def test_the_focus_event_records_the_visible_set_and_keeps_it_when_shifted():
    timeline = Timeline(clock=Clock(), event_offset_s=0.5)
    timeline.extend([EngineEvent(1.0, B, FOCUS, slice=12, visible=(B, A)), EngineEvent(2.0, A, FOCUS)])
    events = timeline.to_json()["events"]
    assert events == [{"t": 1.5, "series": B, "event": "focus", "slice": 12, "visible": [B, A]},
                      {"t": 2.5, "series": A, "event": "focus"}]
