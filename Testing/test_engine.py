"""The engine against the real Orthanc: the order each policy promises, bit-exact final volumes,
focus switches, cancel and close (no thread left behind), and failures that stay contained."""
from __future__ import annotations

import math
import threading
from collections import Counter

import numpy as np
import pytest

from servers.fault_relay import DRIP, Fault

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.engine import DEPTH_FIRST, ProgressiveFetchEngine, StagePlan
from ProgressiveDicomFetchLib.engine.engine import FRAMES_PER_REQUEST

STUDY_SERIES = ("ct_thin", "ct_sagittal", "ct_thick")  # a three-series study (80, 48 and 40 slices)
FRAME_RATE = 1_000_000  # bytes a second per frame answer, through the relay


def run_engine(orthanc, sample_small, strategy="breadth-first", connections=4, on_update=None, keys=STUDY_SERIES,
               server=None, max_connections=None):
    """Load `keys` with the engine (over DICOMweb, or over `server`, e.g. a DimseServer); (engine, events)."""
    engine = ProgressiveFetchEngine(server or DicomwebServer(orthanc.dicomweb_url), connections=connections,
                                    strategy=strategy, max_connections=max_connections)
    events = []

    def collect(update):
        events.extend(update.events)
        if on_update is not None:
            on_update(engine, update, events)

    try:
        for key in keys:
            info = sample_small.series(key)
            engine.add_series(info.study_uid, info.series_uid)
        assert engine.run_until_finished(collect, timeout=120)
    finally:
        assert engine.close()
    return engine, events


def times(events, kind):
    return {e.series_uid: e.t for e in events if e.event == kind}


def assert_bit_exact(engine, sample_small, keys=STUDY_SERIES):
    for key in keys:
        info = sample_small.series(key)
        (load,) = engine.loads(info.series_uid)
        np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(key), err_msg=key)


def no_worker_threads(engine):
    """None of `engine`'s own threads is alive (workers, connections beside): a thread another
    test left behind is that test's failure, not every later test's."""
    return not [t for t in engine._workers + engine._beside.threads if t.is_alive()]


def test_breadth_first_covers_every_series_before_any_completes(orthanc, sample_small):
    engine, events = run_engine(orthanc, sample_small)
    covered, complete = times(events, "covered"), times(events, "complete")
    uids = {sample_small.series(k).series_uid for k in STUDY_SERIES}
    assert set(covered) == set(complete) == uids
    assert max(covered.values()) <= min(complete.values())
    stages = [e.stage for e in events if e.event == "stage" and e.series_uid == sample_small.series("ct_thin").series_uid]
    assert stages == ["anchors", "every-8", "every-4", "every-2", "rest"]
    assert_bit_exact(engine, sample_small)
    assert no_worker_threads(engine)
    progress = {p.series_uid: p for p in engine.progress()}
    assert all(p.state == "complete" and p.full_fraction == 1.0 and p.bytes > 0 for p in progress.values())


def test_depth_first_completes_series_in_the_order_given(orthanc, sample_small):
    engine, events = run_engine(orthanc, sample_small, strategy=DEPTH_FIRST)
    complete = times(events, "complete")
    first = times(events, "first_slice")
    order = [sample_small.series(k).series_uid for k in STUDY_SERIES]
    assert [complete[u] for u in order] == sorted(complete[u] for u in order)
    assert [first[u] for u in order] == sorted(first[u] for u in order)
    assert_bit_exact(engine, sample_small)


def others_loaded_when_target_completes(server, sample_small, target, focus):
    """Load the study (focusing `target` once its first slice lands, if `focus`); returns the share
    of the other series' slices that were exact when `target` completed, and the run."""
    exact = []

    def watch(engine, update, events):
        if focus and not any(e.event == "focus" for e in events) and \
                any(e.event == "first_slice" and e.series_uid == target for e in events):
            engine.set_focus(target, slice_index=40)
        if not exact and any(e.event == "complete" and e.series_uid == target for e in update.events):
            exact.append(sum(p.counts["FULL"] for p in engine.progress() if p.series_uid != target))

    engine, events = run_engine(server, sample_small, on_update=watch)
    others = sum(sample_small.series(k).num_slices for k in STUDY_SERIES) - sample_small.series("ct_thin").num_slices
    return exact[0] / others, engine, events


def test_focus_switch_makes_the_focused_series_complete_first(orthanc_relay, sample_small):
    """The focused series is the largest and first requested (80 of 168 slices): without focus the
    others are nearly done when it completes; focused from its first slice on, it takes the
    connections, completes first, and the others have barely moved meanwhile."""
    target = sample_small.series("ct_thin").series_uid
    # Frames paced by the relay so that fetching them, not the metadata, takes most of the time.
    orthanc_relay.add(Fault(DRIP, "/frames/", times=None, rate=FRAME_RATE))
    unfocused, _, _ = others_loaded_when_target_completes(orthanc_relay, sample_small, target, focus=False)
    assert unfocused > 0.75, f"without focus only {unfocused:.0%} of the others had landed: a weak baseline"
    focused, engine, events = others_loaded_when_target_completes(orthanc_relay, sample_small, target, focus=True)
    assert focused < 0.25, f"{focused:.0%} of the other series landed before the focused one completed"
    focus_at = next(e.t for e in events if e.event == "focus")
    complete = times(events, "complete")
    assert complete[target] == min(complete.values()), "the focused series did not complete first"
    assert all(t > focus_at for t in complete.values())
    assert_bit_exact(engine, sample_small)


def test_a_series_focused_before_its_metadata_gets_its_metadata_and_first_view_first(orthanc, sample_small):
    """One connection: the study's metadata comes one series at a time. The series the user looks
    at, requested last, gets its metadata and probe first, so its first view is the first shown."""
    target = sample_small.series(STUDY_SERIES[-1]).series_uid
    engine = ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url), connections=1)
    events = []
    try:
        engine.pause()  # nothing starts before the focus is set
        for key in STUDY_SERIES:
            info = sample_small.series(key)
            engine.add_series(info.study_uid, info.series_uid)
        engine.set_focus(target)
        engine.resume()
        assert engine.run_until_finished(lambda update: events.extend(update.events), timeout=120)
    finally:
        assert engine.close()
    firsts = [e.series_uid for e in events if e.event == "first_slice"]
    assert firsts[0] == target, firsts
    assert_bit_exact(engine, sample_small)


def test_cancel_keeps_what_was_loaded_and_the_others_finish(orthanc, sample_small):
    cancelled = sample_small.series("ct_thin").series_uid

    def cancel(engine, update, events):
        if any(e.event == "first_slice" and e.series_uid == cancelled for e in events) and \
                not any(e.event == "cancelled" for e in events):
            engine.cancel(cancelled)

    engine, events = run_engine(orthanc, sample_small, on_update=cancel)
    state = {p.series_uid: p for p in engine.progress()}
    assert state[cancelled].state == "cancelled" and state[cancelled].counts["FULL"] >= 1
    assert state[cancelled].counts["FULL"] < state[cancelled].total_slices
    assert cancelled not in times(events, "complete")
    assert all(p.state == "complete" for uid, p in state.items() if uid != cancelled)
    assert no_worker_threads(engine)


def test_close_mid_load_stops_every_worker(orthanc, sample_small):
    """close() returns True once every worker has ended (each finishes at most its request); the
    deadline is generous (two shared cores), the time it takes is a benchmark's business."""
    engine = ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url), connections=4)
    for key in STUDY_SERIES:
        info = sample_small.series(key)
        engine.add_series(info.study_uid, info.series_uid)
    while not any(u.events for u in [engine.process_events()]):
        pass
    assert not engine.finished() and not no_worker_threads(engine)  # closed mid-load, workers running
    assert engine.close(timeout=30.0) and no_worker_threads(engine)
    total = sum(sample_small.series(k).num_slices for k in STUDY_SERIES)
    assert sum(p.counts.get("FULL", 0) for p in engine.progress()) < total, "close() waited for the load to end"
    with pytest.raises(RuntimeError, match="closed"):
        engine.add_series("1.2.3", "1.2.3.4")


def test_a_failing_series_is_reported_and_the_others_continue(orthanc, sample_small):
    good = sample_small.series("ct_thick")
    engine = ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url), connections=2)
    try:
        engine.add_series(good.study_uid, "1.2.3.4.5.6.7")  # no such series
        engine.add_series(good.study_uid, good.series_uid)
        events = []
        assert engine.run_until_finished(lambda u: events.extend(u.events), timeout=60)
    finally:
        engine.close()
    errors = [e for e in events if e.event == "error"]
    assert [e.series_uid for e in errors] == ["1.2.3.4.5.6.7"] and "1.2.3.4.5.6.7" in errors[0].message
    assert good.series_uid in times(events, "complete")
    failed = next(p for p in engine.progress() if p.series_uid == "1.2.3.4.5.6.7")
    assert failed.state == "failed" and failed.error


def test_pause_holds_all_work_until_resume(orthanc, sample_small):
    info = sample_small.series("ct_thick")
    engine = ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url), connections=2)
    try:
        engine.pause()
        engine.add_series(info.study_uid, info.series_uid)
        import time

        time.sleep(0.5)
        assert not engine.process_events() and not engine.finished()
        engine.resume()
        assert engine.run_until_finished(timeout=60)
    finally:
        engine.close()
    np.testing.assert_array_equal(engine.loads(info.series_uid)[0].volume.array, sample_small.load_truth("ct_thick"))


def test_a_pump_loop_like_slicers_timer_finishes_the_load(orthanc, sample_small):
    """engine.pump() is what the module's QTimer calls: events out, then the GIL left to the workers."""
    info = sample_small.series("ct_sagittal")
    engine = ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url), connections=2)
    events, dirty = [], set()
    try:
        engine.add_series(info.study_uid, info.series_uid)
        for _ in range(5000):
            update = engine.pump(budget_ms=5, yield_ms=2)
            events += update.events
            dirty.update(k for (_, _), ks in update.dirty.items() for k in ks)
            if engine.finished():
                events += engine.process_events().events
                break
    finally:
        engine.close()
    assert [e.event for e in events if e.event in ("covered", "complete")] == ["covered", "complete"]
    assert dirty == set(range(info.num_slices))  # every slice was announced to the main thread
    np.testing.assert_array_equal(engine.loads(info.series_uid)[0].volume.array, sample_small.load_truth("ct_sagittal"))


def test_multiframe_object_is_fetched_in_frame_batches_and_bit_exact(orthanc_relay, sample_small):
    """On the wire: the enhanced object's frames go at most 8 to a request, so at most
    ceil(frames / 8) requests per stage, each frame exactly once; every frame request asks for
    `Accept-Encoding: identity` (a gzipping Orthanc is ~20x slower on frames)."""
    engine, events = run_engine(orthanc_relay, sample_small, keys=("enhanced_ct", "ct_thick"))
    assert_bit_exact(engine, sample_small, keys=("enhanced_ct", "ct_thick"))
    info = sample_small.series("enhanced_ct")
    assert info.series_uid in times(events, "complete")
    requests = orthanc_relay.requests_to(f"{info.series_uid}/.*/frames/")
    asked = [int(n) for r in requests for n in r.path.rsplit("/frames/", 1)[1].split(",")]
    assert sorted(asked) == list(range(1, info.num_slices + 1))  # each frame once
    per_stage = Counter(StagePlan().assign(list(range(info.num_slices))).values())
    bound = sum(math.ceil(n / FRAMES_PER_REQUEST) for n in per_stage.values())
    bound += 1  # the series' preview probe: one frame, kept for its turn (previews/probe.py)
    assert FRAMES_PER_REQUEST == 8 and len(requests) <= bound < info.num_slices / 2, [r.path.rsplit("/", 1)[1] for r in requests]
    every_frame_request = orthanc_relay.requests_to("/frames/")
    assert len(every_frame_request) > len(requests)  # ct_thick's too
    assert {r.headers.get("accept-encoding") for r in every_frame_request} == {"identity"}


def test_an_unexpected_worker_error_fails_its_series_and_never_hangs(orthanc, sample_small, monkeypatch):
    """A bug in decoding one series must not leave slices 'in flight' forever."""
    from ProgressiveDicomFetchLib import loading

    broken = sample_small.series("ct_sagittal").series_uid
    original = loading.VolumeLoad.write

    def write(self, k, frame, quality=loading.Quality.FULL):
        if self.geometry.series_uid == broken:
            raise RuntimeError("simulated bug")
        return original(self, k, frame, quality)

    monkeypatch.setattr(loading.VolumeLoad, "write", write)
    engine, events = run_engine(orthanc, sample_small)
    errors = [e for e in events if e.event == "error"]
    assert [e.series_uid for e in errors] == [broken] and "simulated bug" in errors[0].message
    assert set(times(events, "complete")) == {sample_small.series(k).series_uid for k in STUDY_SERIES} - {broken}


def test_each_new_volume_is_touched_once_on_a_thread_of_its_own(orthanc, sample_small, monkeypatch):
    """The buffers' pages are mapped in while the probe waits on the network (the first fill would
    otherwise pay for them inside the first view): once per volume, on a 'pdf-touch' thread, and
    the volumes are exact at the end all the same."""
    from ProgressiveDicomFetchLib.volume import ProgressiveVolume

    touched, original = [], ProgressiveVolume.touch_memory

    def spy(volume, *args, **kwargs):
        touched.append((id(volume), threading.current_thread().name))
        return original(volume, *args, **kwargs)

    monkeypatch.setattr(ProgressiveVolume, "touch_memory", spy)
    engine, _ = run_engine(orthanc, sample_small)
    volumes = {id(load.volume) for key in STUDY_SERIES for load in engine.loads(sample_small.series(key).series_uid)}
    assert sorted(v for v, _ in touched) == sorted(volumes)
    assert {name for _, name in touched} == {"pdf-touch"}
    assert_bit_exact(engine, sample_small)
