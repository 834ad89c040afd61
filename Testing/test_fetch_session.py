"""The console API behind the module's Logic, on a real MRML scene (slicer-core) and the real
Orthanc: searches, non-blocking loads whose nodes appear from the engine's metadata, coarse before
exact, no second download, settings for the next batch, pause/resume, cancel, close."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ProgressiveDicomFetchLib.panel import SearchForm
from ProgressiveDicomFetchLib.scene.fetch_session import FetchSession, NoServerError


def tick_until(session, condition, timeout=60.0):
    limit = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < limit, "timed out"
        session.process()
        time.sleep(0.005)


def test_without_a_server_every_call_says_so(slicer_module):
    session = FetchSession(slicer_module.mrmlScene)
    for call in (session.check_server, session.search_studies, lambda: session.load("1.2", ["1.2.3"])):
        with pytest.raises(NoServerError, match="setServer"):
            call()
    assert session.progress() == [] and session.wait(0) and not session.busy()


def test_search_through_the_session(session, sample_small):
    assert session.check_server().ok
    ct = sample_small.study("ct")
    (study,) = session.search_studies(SearchForm(patient_name="doe").filters())
    assert study.study_uid == ct.study_uid
    assert {s.series_uid for s in session.search_series(ct.study_uid)} == {
        sample_small.series(k).series_uid for k in ct.series_keys}


def test_a_panel_load_returns_at_once_and_nodes_come_coarse_then_exact(session, slicer_module, sample_small):
    slicer = slicer_module
    info = sample_small.series("ct_thin")
    truth = sample_small.load_truth("ct_thin")
    assert session.load(info.study_uid, [info.series_uid], wait_for_metadata=False) == []
    tick_until(session, lambda: session.loader.nodes)
    node = session.loader.nodes[(info.series_uid, 0)]
    assert node.GetName() == f"{info.series_number}: {info.description} (loading)"
    assert slicer.util.arrayFromVolume(node).shape == truth.shape
    coarse_seen = []

    def covered_not_complete():
        (p,) = session.progress()
        if p.covered_fraction == 1.0 and p.full_fraction < 1.0:
            coarse_seen.append(p.full_fraction)
        return p.covered_fraction == 1.0

    tick_until(session, covered_not_complete)
    assert session.wait(timeout=60)
    assert coarse_seen, "the whole volume should be shown before it is exact"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), truth)
    # Asking again gives the same node, without a second download.
    (bytes_before,) = [p.bytes for p in session.progress()]
    assert session.load(info.study_uid, [info.series_uid]) == [node]
    assert [p.bytes for p in session.progress()] == [bytes_before]


def test_settings_apply_to_the_next_batch_and_earlier_series_are_reused(session, sample_small):
    thin, thick = sample_small.series("ct_thin"), sample_small.series("ct_thick")
    (first,) = session.load(thin.study_uid, [thin.series_uid], strategy="breadth-first", connections=2)
    assert session.wait(timeout=60)
    loader = session.loader
    nodes = session.load(thin.study_uid, [thin.series_uid, thick.series_uid], strategy="depth-first", connections=3,
                         boost_focus=False)
    assert session.loader is not loader, "a finished loader is replaced when the settings change"
    assert session.loader.engine.scheduler.strategy == "depth-first"
    assert nodes[0] is first and len(nodes) == 2
    assert session.wait(timeout=60)
    assert [p.series_uid for p in session.progress()] == [thick.series_uid], "the thin series was not fetched again"


@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "random"}, "unknown strategy"), ({"connections": 0}, "between 1 and 16"),
])
def test_bad_load_settings_are_named(session, sample_small, kwargs, message):
    info = sample_small.series("ct_thin")
    with pytest.raises(ValueError, match=message):
        session.load(info.study_uid, [info.series_uid], **kwargs)
    with pytest.raises(ValueError, match="no series"):
        session.load(info.study_uid, [])


def test_pause_holds_the_transfers_and_resume_finishes(session, sample_small):
    info = sample_small.series("ct_thin")
    session.load(info.study_uid, [info.series_uid], connections=1)
    tick_until(session, lambda: session.progress()[0].counts.get("FULL", 0) >= 1)  # metadata and probe done
    session.pause()
    scheduler = session.loader.engine.scheduler
    tick_until(session, lambda: scheduler.in_flight(info.series_uid) == 0)  # the request in flight landed
    session.process()
    (paused,) = session.progress()
    assert paused.full_fraction < 1.0
    time.sleep(0.5)  # nothing may land meanwhile (a longer wait could only catch more)
    session.process()
    landed = ("SUBRESOLUTION", "LOSSY", "FULL")  # real pixels; fills may still settle around them
    assert [session.progress()[0].counts[q] for q in landed] == [paused.counts[q] for q in landed] and session.busy()
    session.resume()
    assert session.wait(timeout=60)
    assert session.progress()[0].full_fraction == 1.0


def test_cancel_and_close_stop_the_workers(session, sample_small):
    info = sample_small.series("ct_thin")
    session.load(info.study_uid, [info.series_uid], connections=1)
    session.cancel(info.series_uid)
    assert session.wait(timeout=10)
    assert session.progress()[0].state == "cancelled"
    engine = session.loader.engine
    session.close()
    assert session.loader is None and not any(w.is_alive() for w in engine._workers)


def test_missing_decoders_are_named_from_the_series_metadata(session, sample_small):
    # Every decoder is installed here, so nothing is missing; the list is what the panel offers to install.
    info = sample_small.series("ct_thin")
    session.load(info.study_uid, [info.series_uid])
    assert session.missing_decoders(info.series_uid) == []
    assert session.missing_decoders("1.2.3.4") == []
    assert session.wait(timeout=60)


def test_a_cancelled_series_loads_again_fetching_only_what_the_cache_lacks(slicer_module, orthanc, sample_small, tmp_path):
    from ProgressiveDicomFetchLib.cache import FrameCache

    slicer = slicer_module
    info = sample_small.series("ct_thin")
    session = FetchSession(slicer.mrmlScene, cache=FrameCache(tmp_path))
    session.set_server(orthanc.dicomweb_url)
    try:
        (first,) = session.load(info.study_uid, [info.series_uid], connections=1)
        tick_until(session, lambda: session.progress()[0].counts.get("FULL", 0) >= 10)
        session.cancel(info.series_uid)
        assert session.wait(timeout=10)
        (cancelled,) = session.progress()
        assert cancelled.state == "cancelled" and 0 < cancelled.full_fraction < 1
        (node,) = session.load(info.study_uid, [info.series_uid])
        assert node is not first and first.GetScene() is None, "the incomplete node is replaced"
        assert session.wait(timeout=60)
        (again,) = session.progress()
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), sample_small.load_truth("ct_thin"))
        slice_bytes = cancelled.bytes / cancelled.counts["FULL"]
        fetched_again = again.bytes / slice_bytes
        assert fetched_again == pytest.approx(info.num_slices - cancelled.counts["FULL"], abs=0.5), \
            "only the slices the cache lacked are downloaded again"
    finally:
        session.close()


def test_an_htj2k_series_on_a_range_server_previews_in_its_node_then_is_exact(slicer_module, static_server,
                                                                             sample_small):
    """The scene path (nodes made from metadata first) with HTJ2K prefix previews on nginx."""
    from ProgressiveDicomFetchLib.pixels.htj2k_preview import previews_available
    from ProgressiveDicomFetchLib.volume import Quality

    if not previews_available():
        pytest.skip("imagecodecs (HTJ2K prefixes) is not installed")
    info = sample_small.series("ct_thick_htj2k")
    session = FetchSession(slicer_module.mrmlScene)
    session.set_server(static_server.dicomweb_url)
    try:
        (node,) = session.load(info.study_uid, [info.series_uid])
        seen = set()

        def previewed_then_done():
            (progress,) = session.progress()
            if progress.counts[Quality.SUBRESOLUTION.name]:
                seen.add(Quality.SUBRESOLUTION)
            return progress.state == "complete"

        tick_until(session, previewed_then_done)
        session.process()
        assert Quality.SUBRESOLUTION in seen
        assert session.optional_packages(info.series_uid) == []  # imagecodecs is here
        assert session.optional_packages("1.2.3") == []
        np.testing.assert_array_equal(slicer_module.util.arrayFromVolume(node), sample_small.load_truth("ct_thick_htj2k"))
    finally:
        session.close()
