"""The console API's lifecycle on slicer-core and real servers: one study failing does not stop
the others, loads are per server, a scene close frees the session, waiting lets the caller run
between ticks, and a node that cannot be refreshed stops its series only (reported once)."""
from __future__ import annotations

import time

import numpy as np

from ProgressiveDicomFetchLib.scene.fetch_session import FetchSession


def test_a_failing_study_does_not_stop_the_others(session, sample_small):
    thin = sample_small.series("ct_thin")
    missing = "1.2.826.0.1.3680043.8.498.1"
    outcome = session.load_studies({missing: [missing + ".1"], thin.study_uid: [thin.series_uid]}, connections=2)
    assert list(outcome.errors) == [missing] and len(outcome.nodes) == 1
    assert session.busy() and session.wait(timeout=60)
    assert [(p.series_uid, p.state) for p in session.progress()] == [(thin.series_uid, "complete")]


def test_series_of_a_second_server_load_from_it(slicer_module, restartable_orthanc, orthanc, sample_small):
    """Server A holds two series; B holds the whole sample. A series only B has, asked while A's
    load runs, must load from B (it would 404 on A)."""
    thin, sagittal = sample_small.series("ct_thin"), sample_small.series("ct_sagittal")
    session = FetchSession(slicer_module.mrmlScene)
    try:
        session.set_server(restartable_orthanc.dicomweb_url)
        session.load(thin.study_uid, [thin.series_uid], connections=1)
        assert session.busy()
        session.set_server(orthanc.dicomweb_url)
        session.load(sagittal.study_uid, [sagittal.series_uid], connections=1)
        assert sorted(loader.server.url for loader in session.loaders()) == sorted(
            [restartable_orthanc.dicomweb_url.rstrip("/"), orthanc.dicomweb_url.rstrip("/")])
        assert session.wait(timeout=90)
        assert {p.series_uid: p.state for p in session.progress()} == {
            thin.series_uid: "complete", sagittal.series_uid: "complete"}
    finally:
        session.close()


def test_a_scene_close_frees_the_session_for_new_loads(session, slicer_module, sample_small):
    thin = sample_small.series("ct_thin")
    session.load(thin.study_uid, [thin.series_uid], connections=1)
    assert session.busy()
    slicer_module.mrmlScene.Clear(False)  # File > Close Scene: the loader stops itself
    assert not session.busy() and session.wait(timeout=5)
    (node,) = session.load(thin.study_uid, [thin.series_uid], connections=2)
    assert node.GetScene() is slicer_module.mrmlScene and session.wait(timeout=60)
    np.testing.assert_array_equal(slicer_module.util.arrayFromVolume(node), sample_small.load_truth("ct_thin"))


def test_waiting_runs_the_callers_event_processing_while_the_volume_refines(session, slicer_module, sample_small):
    thin = sample_small.series("ct_thin")
    truth = sample_small.load_truth("ct_thin")
    (node,) = session.load(thin.study_uid, [thin.series_uid], connections=1)
    seen = []

    def process_events():  # what slicer.app.processEvents is to the Logic: views repaint here
        seen.append(bool((slicer_module.util.arrayFromVolume(node) == truth).all()))

    assert session.wait(timeout=60, on_idle=process_events)
    assert len(seen) > 3 and not seen[0], "called while the volume was still refining"
    np.testing.assert_array_equal(slicer_module.util.arrayFromVolume(node), truth)


def test_a_node_that_cannot_be_refreshed_stops_its_series_only_and_says_so_once(session, slicer_module, sample_small):
    import vtk

    thin, thick = sample_small.series("ct_thin"), sample_small.series("ct_thick")
    broken, good = session.load(thin.study_uid, [thin.series_uid, thick.series_uid], connections=1)
    broken.SetAndObserveImageData(vtk.vtkImageData())  # another module replaced its image: no scalars
    errors = []
    limit = time.monotonic() + 60
    while session.busy():
        assert time.monotonic() < limit
        errors += [e for e in session.process().events if e.event == "error"]
        time.sleep(0.005)
    for _ in range(3):
        errors += [e for e in session.process().events if e.event == "error"]
    assert [e.series_uid for e in errors] == [thin.series_uid] and "could not be updated" in errors[0].message
    states = {p.series_uid: p.state for p in session.progress()}
    assert states == {thin.series_uid: "cancelled", thick.series_uid: "complete"}
    np.testing.assert_array_equal(slicer_module.util.arrayFromVolume(good), sample_small.load_truth("ct_thick"))
