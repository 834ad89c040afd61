"""Series into a real MRML scene (slicer-core) from the real Orthanc: nodes before pixels, refined
in place (no copy), events for the views, steady window/level, subject hierarchy, lifecycle."""
from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine
from ProgressiveDicomFetchLib.scene.scene_loader import REFRESH_INTERVAL_S, SceneLoader
from ProgressiveDicomFetchLib.volume import Quality


@pytest.fixture()
def loader(slicer_module, orthanc):
    scene_loader = SceneLoader(ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url)), watch_focus=False)
    yield scene_loader
    scene_loader.close()


def file_presets(path):
    """(width, level) pairs as the file states them, read with pydicom: top level, or the enhanced
    object's shared functional groups."""
    ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    source = ds if "WindowCenter" in ds else ds.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    centers, widths = source.WindowCenter, source.WindowWidth
    centers = list(centers) if source["WindowCenter"].VM > 1 else [centers]
    widths = list(widths) if source["WindowWidth"].VM > 1 else [widths]
    return [(float(w), float(c)) for c, w in zip(centers, widths)]


def node_presets(display):
    return [(display.GetWindowPreset(i), display.GetLevelPreset(i)) for i in range(display.GetNumberOfWindowLevelPresets())]


def reference_matrix(slicer, info, truth):
    """What slicer.util.addVolumeFromArray gives for the reference array and the truth matrix."""
    import vtk

    ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.array(info.ijk_to_lps)
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, ijk_to_ras[r, c])
    node = slicer.util.addVolumeFromArray(truth, ijkToRAS=matrix, name="reference")
    result = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(result)
    return np.array([[result.GetElement(r, c) for c in range(4)] for r in range(4)])


def node_matrix(node):
    import vtk

    result = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(result)
    return np.array([[result.GetElement(r, c) for c in range(4)] for r in range(4)])


def test_nodes_exist_before_pixels_and_refine_in_place_to_exact(loader, slicer_module, sample_small):
    slicer = slicer_module
    info = sample_small.series("ct_thin")
    truth = sample_small.load_truth("ct_thin")
    (node,) = loader.load(info.study_uid, [info.series_uid])
    assert node.GetName() == f"{info.series_number}: {info.description} (loading)"
    np.testing.assert_allclose(node_matrix(node), reference_matrix(slicer, info, truth), atol=1e-9)
    view = slicer.util.arrayFromVolume(node)
    engine_buffer = loader.engine.loads(info.series_uid)[0].volume.array
    assert np.shares_memory(view, engine_buffer), "the node must show the engine's buffer, not a copy"
    assert node.GetAttribute("DICOM.instanceUIDs") is None, "the instances are claimed only once exact"
    assert loader.wait(timeout=60)
    assert node.GetAttribute("DICOM.instanceUIDs").split() == sorted(
        info.sop_instance_uids, key=lambda uid: list(loader.engine.loads(info.series_uid)[0].geometry.instance_uids).index(uid))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), truth)


def test_refreshes_fire_the_views_events_coalesced_and_window_level_stays(loader, slicer_module, sample_small):
    info = sample_small.series("ct_thin")
    (node,) = loader.load(info.study_uid, [info.series_uid])
    counts = {"modified": 0, "image": 0}
    refreshed_at = []
    node.AddObserver("ModifiedEvent", lambda *a: counts.__setitem__("modified", counts["modified"] + 1))
    node.AddObserver(node.ImageDataModifiedEvent, lambda *a: counts.__setitem__("image", counts["image"] + 1))
    node.AddObserver(node.ImageDataModifiedEvent,
                     lambda *a: refreshed_at.append((time.monotonic(), loader.engine.finished())))
    display = node.GetDisplayNode()
    assert display.GetAutoWindowLevel() == 0
    windows = set()
    dirty_batches = 0
    while not loader.engine.finished():
        update = loader.process()
        dirty_batches += bool(update.dirty)
        windows.add((display.GetWindow(), display.GetLevel()))
    loader.process()
    windows.add((display.GetWindow(), display.GetLevel()))
    # The rate limit (README: at most one refresh per volume every 0.1 s; once the engine has
    # finished, the last changes land at once).
    assert REFRESH_INTERVAL_S == 0.1 and loader.refresh_interval_s == REFRESH_INTERVAL_S
    gaps = [b - a for (a, _), (b, done) in zip(refreshed_at, refreshed_at[1:]) if not done]
    assert len(gaps) >= 2, f"only {len(refreshed_at)} refreshes: the load was too short to see the limit"
    assert min(gaps) >= REFRESH_INTERVAL_S - 0.02, f"refreshes {[round(g * 1000) for g in gaps]} ms apart"
    assert counts["image"] >= 1 and counts["modified"] == counts["image"]  # one of each per refresh
    assert counts["image"] <= dirty_batches, "refreshes are coalesced: never more than the batches"
    assert windows == {(400.0, 40.0)}, "the DICOM preset is kept all along"
    assert node_presets(display) == file_presets(sample_small.files("ct_thin")[0])


def test_without_presets_the_window_comes_once_from_the_first_real_slices(loader, slicer_module, sample_small):
    info = sample_small.series("edge_nonsquare")
    assert info.expect["window_presets"] is False
    (node,) = loader.load(info.study_uid, [info.series_uid])
    display = node.GetDisplayNode()
    assert display.GetNumberOfWindowLevelPresets() == 0 and display.GetAutoWindowLevel() == 0
    default = (display.GetWindow(), display.GetLevel())
    volume = loader.engine.loads(info.series_uid)[0].volume
    seen = []  # (window, level after each tick; real slices before it, FULL slices after it)
    while not loader.engine.finished():
        real = len(volume.loaded_slices())  # before the tick: slices landing during it are the next tick's
        loader.process()
        seen.append((display.GetWindow(), display.GetLevel(), real, volume.counts()[Quality.FULL]))
    loader.process()
    windows = [(w, lv) for w, lv, _, _ in seen if (w, lv) != default]
    assert windows and len(set(windows)) == 1 and windows[0][0] > 1, "set once, never changed"
    first = next(i for i, (w, lv, _, _) in enumerate(seen) if (w, lv) != default)
    assert seen[first][3] < volume.num_slices, "set from the first real slices, long before the volume is exact"
    assert all(real == 0 for _, _, real, _ in seen[:first]), "no tick with real slices went without a window"
    assert (display.GetWindow(), display.GetLevel()) == windows[0]


def test_enhanced_objects_take_their_presets_from_the_functional_groups(loader, sample_small):
    info = sample_small.series("enhanced_ct")
    (node,) = loader.load(info.study_uid, [info.series_uid])
    presets = file_presets(sample_small.files("enhanced_ct")[0])
    assert presets and node_presets(node.GetDisplayNode()) == presets
    loader.wait(timeout=60)


def test_subject_hierarchy_has_real_patient_and_study_names(loader, slicer_module, sample_small):
    slicer = slicer_module
    study = sample_small.study("ct")
    keys = ["ct_thin", "ct_thick"]
    nodes = loader.load(study.study_uid, [sample_small.series(k).series_uid for k in keys])
    shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    items = [shn.GetItemByDataNode(n) for n in nodes]
    studies = {shn.GetItemParent(i) for i in items}
    assert len(studies) == 1
    study_item = studies.pop()
    patient_item = shn.GetItemParent(study_item)
    assert shn.GetItemName(study_item) == study.study_description
    assert shn.GetItemName(patient_item) == study.patient_name
    assert shn.GetItemAttribute(patient_item, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMPatientIDAttributeName()) == study.patient_id
    loader.wait(timeout=60)


def test_removing_a_node_cancels_its_series_and_loading_again_reuses(loader, slicer_module, sample_small):
    slicer = slicer_module
    thin, thick = sample_small.series("ct_thin"), sample_small.series("ct_thick")
    node_thin, node_thick = loader.load(thin.study_uid, [thin.series_uid, thick.series_uid])
    assert loader.load(thin.study_uid, [thin.series_uid]) == [node_thin]
    loader.process()
    slicer.mrmlScene.RemoveNode(node_thin)
    assert loader.wait(timeout=60)
    state = {p.series_uid: p.state for p in loader.engine.progress()}
    assert state[thin.series_uid] in ("cancelled", "complete") and state[thick.series_uid] == "complete"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node_thick), sample_small.load_truth("ct_thick"))


def test_closing_the_scene_stops_the_workers(loader, slicer_module, sample_small):
    from test_engine import no_worker_threads

    info = sample_small.series("ct_thin")
    loader.load(info.study_uid, [info.series_uid])
    engine = loader.engine
    slicer_module.mrmlScene.Clear(False)
    assert no_worker_threads(engine)


def test_the_view_the_user_looks_at_moves_the_engines_focus(slice_views, orthanc, sample_small):
    """Red's background volume and slice offset drive the boost (focus events carry the slice)."""
    thin, thick = sample_small.series("ct_thin"), sample_small.series("ct_thick")
    loader = SceneLoader(ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url)), show=False)
    try:
        node_thin, node_thick = loader.load(thin.study_uid, [thin.series_uid, thick.series_uid])
        loader.engine.pause()  # keep both series loading while the views change
        slice_views.red_composite.SetBackgroundVolumeID(node_thick.GetID())
        assert loader.engine.scheduler.focus == thick.series_uid
        ras = [0.0, 0.0, 0.0, 1.0]
        import vtk

        matrix = vtk.vtkMatrix4x4()
        node_thick.GetIJKToRASMatrix(matrix)
        matrix.MultiplyPoint([0, 0, 7, 1], ras)
        slice_views.red.SetSliceOffset(ras[2])
        slice_views.red_composite.SetBackgroundVolumeID(node_thin.GetID())
        focus = [e for e in loader.process().events if e.event == "focus"]
        assert [e.series_uid for e in focus][:2] == [thick.series_uid, thick.series_uid]
        assert focus[1].slice == 7 and focus[-1].series_uid == thin.series_uid
        loader.engine.resume()
        assert loader.wait(timeout=60)
    finally:
        loader.close()


def test_a_refresh_reaches_the_slice_logic_that_shows_the_volume(slice_views, orthanc, sample_small):
    info = sample_small.series("ct_thick")
    loader = SceneLoader(ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url)), watch_focus=False)
    try:
        (node,) = loader.load(info.study_uid, [info.series_uid])  # shown in every view (composite nodes)
        assert slice_views.red_composite.GetBackgroundVolumeID() == node.GetID()
        fired = []
        slice_views.logics[0].AddObserver("ModifiedEvent", lambda *args: fired.append(1))
        assert loader.wait(timeout=60)
        assert fired, "Red's slice logic must hear about refined slices (it triggers the redraw)"
    finally:
        loader.close()
