"""In-plane previews (issue 10) against real servers: HTJ2K prefixes by Range on nginx (plain and
multipart frame files), alternates beside frames/, and the clean fallback on Orthanc (no Range).

Writes are recorded in order by wrapping the volumes' own write_slice (the real one runs), so
"every slice has its preview before any is exact" is checked on every write, not on samples.
"""
from __future__ import annotations

import threading

import numpy as np
import pydicom
import pytest
from fixtures_servers import NO_ALTERNATES_KEY
from servers.fault_relay import STALL, Fault

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.dicomweb.metadata import series_metadata
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine, StagePlan
from ProgressiveDicomFetchLib.geometry import series_geometry
from ProgressiveDicomFetchLib.loading import VolumeLoad
from ProgressiveDicomFetchLib.pixels.htj2k_preview import previews_available
from ProgressiveDicomFetchLib.sampledata.static_tree import split_frames
from ProgressiveDicomFetchLib.volume import Quality

HTJ2K_KEY = "ct_thick_htj2k"  # 40 slices, 128x128, HTJ2K lossless RPCL
pytestmark = pytest.mark.skipif(not previews_available(), reason="imagecodecs (HTJ2K) is not installed")


class WriteLog:
    """Every slice write of the given volumes, in order: (volume index, k, quality, written)."""

    def __init__(self, loads):
        self.writes = []
        self._lock = threading.Lock()
        for index, load in enumerate(loads):
            self._wrap(index, load.volume)

    def _wrap(self, index, volume):
        original = volume.write_slice

        def write_slice(k, data, quality=Quality.FULL, reduction=1):
            written = original(k, data, quality, reduction)
            with self._lock:
                self.writes.append((index, k, Quality(quality), written))
            return written
        volume.write_slice = write_slice

    def accepted(self):
        return [(v, k, q) for v, k, q, written in self.writes if written]


def prepared_loads(server, info):
    instances = series_metadata(server, info.study_uid, info.series_uid)
    return [VolumeLoad(volume, info.study_uid, instances) for volume in series_geometry(instances, info.series_uid).volumes]


def run(url, info, plan=StagePlan(), connections=3, log_type=None, **options):
    """Load one series through the engine with volumes we made (the scene's path); returns the
    engine, its events, the write log (a `log_type`, default WriteLog) and the loads. `options`
    go to the engine."""
    server = DicomwebServer(url)
    loads = prepared_loads(server, info)
    log = (log_type or WriteLog)(loads)
    engine = ProgressiveFetchEngine(DicomwebServer(url), connections=connections, plan=plan, **options)
    events = []
    try:
        engine.add_series(info.study_uid, info.series_uid, loads=loads)
        assert engine.run_until_finished(lambda update: events.extend(update.events), timeout=120)
    finally:
        assert engine.close()
    return engine, events, log, loads


def frame_bytes(tree, info):
    """The served bytes of every frame file of the series."""
    return sum(tree.frame_path(i, n).stat().st_size for i in tree.instances if i.series_uid == info.series_uid
               for n in range(1, i.frames + 1))


@pytest.mark.parametrize("fixture", ["static_server", "static_server_multipart"])
def test_htj2k_series_loads_prefix_first_then_exact_with_no_byte_fetched_twice(fixture, request, sample_small):
    server = request.getfixturevalue(fixture)
    info = sample_small.series(HTJ2K_KEY)
    mark = server.access_log_mark()
    engine, events, log, (load,) = run(server.dicomweb_url, info)
    accepted = log.accepted()
    first_full = next(i for i, (_, _, q) in enumerate(accepted) if q == Quality.FULL)
    previewed = {k for _, k, q in accepted[:first_full] if q == Quality.SUBRESOLUTION}
    assert previewed == set(range(load.volume.num_slices)), "a slice became exact before every slice had a preview"
    assert sorted(k for _, k, q in accepted if q == Quality.FULL) == list(range(load.volume.num_slices))
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(HTJ2K_KEY))
    stages = [e.stage for e in events if e.event == "stage"]
    assert stages == StagePlan().stage_ids()
    (progress,) = engine.progress()
    sent = server.access_log(since=mark, path=f"{info.series_uid}/.*/frames/")
    assert sum(r.body_bytes for r in sent) == frame_bytes(server.tree, info)  # nginx sent each byte once
    assert progress.bytes == frame_bytes(server.tree, info)  # and the engine counted them right


def test_prefix_previews_are_close_to_the_truth_and_better_than_filling(static_server, sample_small):
    """At the end of the preview stages every slice is a real reduced image of itself."""
    info = sample_small.series(HTJ2K_KEY)
    snapshots = {}
    server = DicomwebServer(static_server.dicomweb_url)
    loads = prepared_loads(server, info)
    engine = ProgressiveFetchEngine(server, connections=2)

    def on_update(update):
        if any(e.event == "stage" and e.stage == "preview-rest" for e in update.events):
            snapshots["previews"] = (loads[0].volume.array.copy(), loads[0].volume.qualities())

    try:
        engine.add_series(info.study_uid, info.series_uid, loads=loads)
        assert engine.run_until_finished(on_update, timeout=120)
    finally:
        engine.close()
    truth = sample_small.load_truth(HTJ2K_KEY).astype(np.float64)
    preview, qualities = snapshots["previews"]
    assert qualities.min() >= Quality.SUBRESOLUTION
    error = np.abs(preview - truth).mean()
    nearest = np.abs(truth[::4].repeat(4, axis=0)[:len(truth)] - truth).mean()  # every 4th slice, copied
    assert error < nearest and error < 0.2 * np.abs(truth - truth.mean()).mean()


def test_orthanc_ignores_range_and_the_series_loads_by_full_frames(orthanc_relay, sample_small):
    info = sample_small.series(HTJ2K_KEY)
    engine, events, log, (load,) = run(orthanc_relay.dicomweb_url, info)
    assert {q for _, _, q in log.accepted()} == {Quality.FULL}  # no preview: Orthanc answered 200
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(HTJ2K_KEY))
    assert [e.stage for e in events if e.event == "stage"] == StagePlan.parse("anchors,8,4,2").stage_ids()
    (progress,) = engine.progress()
    sizes = [len(f) for f in sample_small_frames(sample_small, HTJ2K_KEY)]
    assert progress.bytes == sum(sizes)
    # On the wire: one 200 answer per frame, the probe's included (it was used, not fetched again);
    # the 500s are Orthanc 1.10 refusing the HTJ2K transfer syntax before the fallback is learnt.
    answered = [r.path for r in orthanc_relay.requests_to(f"{info.series_uid}/.*/frames/") if r.status == 200]
    assert len(answered) == len(set(answered)) == len(sizes)
    assert "ignores Range" in engine._series[info.series_uid].preview_note


@pytest.mark.parametrize("known", [False, True])
def test_on_a_server_ignoring_range_the_probes_frame_shows_before_the_alternates_answer(orthanc_relay, sample_small,
                                                                                        known):
    """The probe's whole frame (the middle slice) is written at once: the first view comes one
    frame request after the metadata, not after the alternates' answers (held back 4 s here by
    the relay). `known`: the server's Range answer is learnt already, so the probe asks the whole
    frame first. Nothing is fetched twice and the volume is exact at the end."""
    info = sample_small.series("ct_thick")
    orthanc_relay.add(Fault(STALL, path="jlsThumbnail", times=1, fraction=0.0, stall_s=4.0))
    server = DicomwebServer(orthanc_relay.dicomweb_url)
    if known:
        server.traits.learn_ranges(server, False)
    engine = ProgressiveFetchEngine(server, connections=3)
    events = []
    try:
        engine.add_series(info.study_uid, info.series_uid)
        assert engine.run_until_finished(lambda update: events.extend(update.events), timeout=120)
    finally:
        assert engine.close()
    first = next(e.t for e in events if e.event == "first_slice")
    covered = next(e.t for e in events if e.event == "covered")
    complete = next(e.t for e in events if e.event == "complete")
    assert orthanc_relay.fired()["stall"] >= 1 and complete >= 4.0  # the alternates' probe waited
    assert first <= covered < 3.0, f"first view at {covered:.2f} s"
    (load,) = engine.loads(info.series_uid)
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth("ct_thick"))
    answered = [r.path for r in orthanc_relay.requests_to(f"{info.series_uid}/.*/frames/") if r.status == 200]
    assert len(answered) == len(set(answered)) == info.num_slices  # the probe's frame was not fetched again


def sample_small_frames(sample, key):
    return [frame for path in sample.files(key) for frame in split_frames(pydicom.dcmread(str(path)))]


def test_non_htj2k_series_on_a_range_server_are_not_probed(static_server, sample_small):
    info = sample_small.series("ct_thick")
    mark = static_server.access_log_mark()
    engine, events, log, (load,) = run(static_server.dicomweb_url, info)
    assert {q for _, _, q in log.accepted()} == {Quality.FULL}
    requests = [(r.path, r.status, r.body_bytes) for r in static_server.access_log(since=mark, path="/frames/")
                if info.series_uid in r.path]
    assert requests and all(status == 200 for _, status, _ in requests)  # no Range asked
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth("ct_thick"))


def test_without_previews_in_the_plan_nothing_is_probed(static_server, sample_small):
    info = sample_small.series(HTJ2K_KEY)
    engine, events, log, (load,) = run(static_server.dicomweb_url, info, plan=StagePlan.parse("anchors,8,4,2"))
    assert {q for _, _, q in log.accepted()} == {Quality.FULL}
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(HTJ2K_KEY))


@pytest.mark.parametrize("key", ["ct_thick", "edge_signed"])
def test_thumbnail_alternates_preview_every_slice_then_exact_frames_replace_them(key, static_server_alternates,
                                                                                  sample_small):
    info = sample_small.series(key)
    engine, events, log, (load,) = run(static_server_alternates.dicomweb_url, info)
    accepted = log.accepted()
    first_full = next(i for i, (_, _, q) in enumerate(accepted) if q == Quality.FULL)
    assert {k for _, k, q in accepted[:first_full]} == set(range(load.volume.num_slices))
    assert {q for _, _, q in accepted[:first_full]} == {Quality.SUBRESOLUTION}
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(key))
    assert "jlsThumbnail" in engine._series[info.series_uid].preview_note


def test_a_series_without_alternates_loads_by_full_frames(static_server_alternates, sample_small):
    info = sample_small.series(NO_ALTERNATES_KEY)
    engine, events, log, (load,) = run(static_server_alternates.dicomweb_url, info)
    assert {q for _, _, q in log.accepted()} == {Quality.FULL}
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(NO_ALTERNATES_KEY))



class StateLog(WriteLog):
    """WriteLog that also keeps, after every accepted write, the qualities and the slices between
    two exact neighbours with their pixels (one worker: nothing else writes meanwhile)."""

    def __init__(self, loads):
        self.states = []
        super().__init__(loads)

    def _wrap(self, index, volume):
        original = volume.write_slice

        def write_slice(k, data, quality=Quality.FULL, reduction=1):
            written = original(k, data, quality, reduction)
            if written:
                qualities = volume.qualities()
                exact = qualities == Quality.FULL
                between = [j for j in range(1, len(qualities) - 1) if exact[j - 1] and exact[j + 1] and not exact[j]]
                self.states.append((qualities, {j: volume.array[j - 1:j + 2].copy() for j in between}))
            return written
        volume.write_slice = write_slice


@pytest.mark.parametrize("rule, yields", [(((2, 2),), True), (None, False)])
def test_previews_yield_to_exact_neighbours_by_the_reduction_the_probe_found(rule, yields, static_server,
                                                                            sample_small, monkeypatch):
    """The probe's reduction reaches the volume through the engine: with a rule that yields 1/2-size
    previews (those of this 128x128 series), a slice whose neighbours are both exact shows their
    interpolation (FILLED) from that write on, never its preview; with the measured rule (1/4 size
    and smaller) these previews stay until their exact frame. Checked after every write."""
    from ProgressiveDicomFetchLib.volume import fill

    if rule is not None:
        monkeypatch.setattr(fill, "YIELD_RULE", rule)
    info = sample_small.series(HTJ2K_KEY)
    engine, events, log, (load,) = run(static_server.dicomweb_url, info, connections=1, log_type=StateLog)
    assert (load.volume.qualities() == Quality.FULL).all()
    checked = 0
    for qualities, between in log.states:
        for j, (low, middle, high) in between.items():
            if yields:
                assert qualities[j] == Quality.FILLED, f"slice {j} kept its preview between exact neighbours"
                expected = np.rint((low.astype(np.float32) + high.astype(np.float32)) / 2)
                np.testing.assert_array_equal(middle, expected.astype(middle.dtype))
            else:
                assert qualities[j] == Quality.SUBRESOLUTION
            checked += 1
    assert checked > 20  # the rest stage puts every odd slice between exact ones
