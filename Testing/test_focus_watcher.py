"""FocusWatcher on a real MRML scene (slicer-core): the view the user touched decides the focus.

Slice views are made as Slicer makes them, without Qt: the application logic adds the slice
orientation presets, the layout logic creates the Red/Green/Yellow slice nodes, one slice logic per
view creates its composite node; the crosshair node is added like qSlicerCoreApplication does.
"""
from __future__ import annotations

import gc
import math
import time
import weakref
from typing import Any, List, Tuple

import numpy as np
import pytest

from ProgressiveDicomFetchLib.engine.focus_policy import Shown
from ProgressiveDicomFetchLib.scene.focus_watcher import FocusWatcher, slice_at_center

AXIAL = np.array([[-1.0, 0, 0, 5], [0, -1.0, 0, 4], [0, 0, 2.5, -10], [0, 0, 0, 1]])  # k at z = -10 + 2.5 k
_C, _S = math.cos(math.radians(30)), math.sin(math.radians(30))
OBLIQUE = np.array([[2.0, 0, 0, 0], [0, 2 * _C, -2 * _S, 0], [0, 2 * _S, 2 * _C, -1], [0, 0, 0, 1]])


def _vtk_matrix(array: np.ndarray) -> Any:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for col in range(4):
            matrix.SetElement(row, col, array[row, col])
    return matrix


def _expected_k(ijk_to_ras: np.ndarray, slice_node: Any) -> int:
    center = [slice_node.GetSliceToRAS().GetElement(row, 3) for row in range(3)] + [1.0]
    return int(round((np.linalg.inv(ijk_to_ras) @ center)[2]))


@pytest.fixture()
def views(slice_views):
    slicer, scene = slice_views.slicer, slice_views.scene
    a = slicer.util.addVolumeFromArray(np.zeros((20, 8, 10), np.int16), ijkToRAS=_vtk_matrix(AXIAL), name="A")
    b = slicer.util.addVolumeFromArray(np.zeros((12, 8, 10), np.int16), ijkToRAS=_vtk_matrix(OBLIQUE), name="B")
    known = {a.GetID(): ("1.2.A", 0), b.GetID(): ("1.2.B", 1)}
    calls: List[Tuple[str, Any, int]] = []
    state = slice_views
    state.a, state.b, state.known, state.calls = a, b, known, calls
    state.watcher = FocusWatcher(scene, known.get, lambda *focus: calls.append(focus))
    yield state
    if state.watcher is not None:
        state.watcher.stop()


def test_views_are_paired_by_layout_name_as_slicer_does(views):
    assert views.red.GetLayoutName() == views.red_composite.GetLayoutName() == "Red"
    assert views.red.GetOrientation() == "Axial" and views.yellow.GetOrientation() == "Sagittal"
    assert views.calls == [], "nothing shown yet: no focus"


def test_red_background_offset_and_volume_switch_move_the_focus(views):
    views.red_composite.SetBackgroundVolumeID(views.a.GetID())
    assert views.calls == [("1.2.A", 4, 0)]  # centre z = 0 -> k = (0 + 10) / 2.5

    views.red.SetSliceOffset(15.0)
    assert views.calls[-1] == ("1.2.A", 10, 0)
    views.red.SetSliceOffset(15.5)  # same slice: no call
    views.red.SetSliceOffset(15.5)
    assert len(views.calls) == 2

    views.red_composite.SetBackgroundVolumeID(views.b.GetID())
    assert _expected_k(OBLIQUE, views.red) == 7
    assert views.calls[-1] == ("1.2.B", 7, 1)

    views.red.SetSliceOffset(1000.0)  # beyond the end: the nearest end slice
    assert views.calls[-1] == ("1.2.B", 11, 1)
    assert len(views.calls) == 4


def test_the_last_touched_view_wins_and_the_crosshair_follows_the_mouse(views):
    views.red_composite.SetBackgroundVolumeID(views.b.GetID())
    views.red.SetSliceOffset(15.0)
    red_focus = ("1.2.B", _expected_k(OBLIQUE, views.red), 1)
    assert views.calls[-1] == red_focus

    views.yellow_composite.SetBackgroundVolumeID(views.a.GetID())
    views.yellow.JumpSliceByCentering(0.0, 0.0, 5.0)
    assert views.calls[-1] == ("1.2.A", 6, 0)

    views.red.SetSliceOffset(16.0)  # scrolling Red makes it the view again
    red_focus = ("1.2.B", _expected_k(OBLIQUE, views.red), 1)
    assert views.calls[-1] == red_focus

    count = len(views.calls)
    for x in (1.0, 2.0, 3.0):  # the mouse moves about in Yellow: one call
        views.crosshair.SetCursorPositionXYZ([x, 10.0, 0.0], views.yellow)
    assert views.calls[count:] == [("1.2.A", 6, 0)]
    views.crosshair.SetCursorPositionInvalid()  # the mouse left every view: the last one stays
    views.crosshair.SetCursorPositionXYZ([1.0, 1.0, 0.0], views.red)
    assert views.calls[count:] == [("1.2.A", 6, 0), red_focus]


def test_unknown_volumes_and_repeats_make_no_call(views):
    other = views.slicer.util.addVolumeFromArray(np.zeros((4, 4, 4), np.int16), name="not ours")
    views.red_composite.SetBackgroundVolumeID(other.GetID())
    views.red.SetSliceOffset(3.0)
    assert views.calls == []

    views.red_composite.SetForegroundVolumeID(views.a.GetID())
    views.red_composite.SetForegroundOpacity(0.0)
    assert views.calls == [], "an invisible foreground is not looked at"
    views.red_composite.SetForegroundOpacity(0.5)
    assert views.calls == [("1.2.A", 5, 0)]  # z = 3 -> k = 13 / 2.5 rounded

    views.red_composite.SetForegroundVolumeID(None)  # back to the unknown background: focus stays
    views.watcher.refresh()
    views.crosshair.SetCursorPositionXYZ([0.0, 0.0, 0.0], views.red)
    assert views.calls == [("1.2.A", 5, 0)]

    views.known[other.GetID()] = ("1.2.LATE", 0)  # resolve learns a node already shown
    views.watcher.refresh()
    assert views.calls[-1] == ("1.2.LATE", 3, 0)  # identity geometry: z = 3 is k = 3


def test_hidden_views_do_not_take_the_focus(views):
    views.red_composite.SetBackgroundVolumeID(views.a.GetID())
    views.yellow_composite.SetBackgroundVolumeID(views.a.GetID())
    views.yellow.JumpSliceByCentering(0.0, 0.0, 5.0)
    assert views.calls[-1] == ("1.2.A", 6, 0)

    views.red.SetMappedInLayout(True)  # a layout manager now shows Red only
    views.yellow.JumpSliceByCentering(0.0, 0.0, 10.0)
    views.red.SetSliceOffset(-10.0)
    assert views.calls[-1] == ("1.2.A", 0, 0)
    views.yellow.JumpSliceByCentering(0.0, 0.0, 20.0)
    assert views.calls[-1] == ("1.2.A", 0, 0)


def test_views_added_and_removed_after_the_start(views):
    slicer, scene = views.slicer, views.scene
    views.red_composite.SetBackgroundVolumeID(views.a.GetID())
    logic = slicer.vtkMRMLSliceLogic()
    logic.SetMRMLScene(scene)
    green = scene.GetNodeByID("vtkMRMLSliceNodeGreen")
    logic.SetSliceNode(green)  # creates Green's composite node now
    logic.GetSliceCompositeNode().SetBackgroundVolumeID(views.b.GetID())
    assert views.calls[-1] == ("1.2.B", _expected_k(OBLIQUE, green), 1)

    views.yellow_composite.SetBackgroundVolumeID(views.a.GetID())
    views.yellow.JumpSliceByCentering(0.0, 0.0, 5.0)
    assert views.calls[-1] == ("1.2.A", 6, 0)
    scene.RemoveNode(views.yellow)  # the active view goes: back to Red
    assert views.calls[-1] == ("1.2.A", 4, 0)
    count = len(views.calls)
    views.yellow.SetSliceOffset(30.0)
    views.yellow_composite.SetBackgroundVolumeID(views.b.GetID())
    assert len(views.calls) == count


def test_scene_close_and_stop(views):
    slicer, scene = views.slicer, views.scene
    views.red_composite.SetBackgroundVolumeID(views.a.GetID())
    assert views.calls == [("1.2.A", 4, 0)]
    scene.Clear(False)  # volumes go, the singleton views stay
    assert views.calls == [("1.2.A", 4, 0)]
    again = slicer.util.addVolumeFromArray(np.zeros((20, 8, 10), np.int16), ijkToRAS=_vtk_matrix(AXIAL))
    views.known[again.GetID()] = ("1.2.A", 0)
    views.red_composite.SetBackgroundVolumeID(again.GetID())
    assert views.calls[-1] == ("1.2.A", 4, 0) and len(views.calls) == 2, "same focus after a close is news"

    views.watcher.stop()
    views.watcher.stop()
    views.red.SetSliceOffset(15.0)
    views.crosshair.SetCursorPositionXYZ([0.0, 0.0, 0.0], views.red)
    views.red_composite.SetBackgroundVolumeID(None)
    views.watcher.refresh()
    assert len(views.calls) == 2

    watcher = weakref.ref(views.watcher)
    views.watcher = None
    gc.collect()
    assert watcher() is None, "an observer left behind would keep the watcher alive"


def test_slice_at_center_follows_a_linear_parent_transform(views):
    transform = views.slicer.vtkMRMLLinearTransformNode()
    views.scene.AddNode(transform)
    shift = np.eye(4)
    shift[2, 3] = 5.0  # the volume moved up 5 mm
    transform.SetMatrixTransformToParent(_vtk_matrix(shift))
    views.red.SetSliceOffset(15.0)
    assert slice_at_center(views.red, views.a) == 10
    views.a.SetAndObserveTransformNodeID(transform.GetID())
    assert slice_at_center(views.red, views.a) == 8


@pytest.fixture()
def screen(views):
    """The same views with a visible-set callback too (`views.visible`: its calls)."""
    views.watcher.stop()
    views.calls.clear()
    visible: List[Tuple[Tuple[Shown, ...], Any]] = []
    views.visible = visible
    views.watcher = FocusWatcher(views.scene, views.known.get, lambda *focus: views.calls.append(focus),
                                 lambda shown, last: visible.append((tuple(shown), last)))
    return views


def on_screen(screen) -> Tuple[Any, ...]:
    """The last reported visible set as {series: viewed slices} and the last touched series."""
    shown, last = screen.visible[-1]
    merged = {}
    for item in shown:
        merged.setdefault(item.series, []).extend(item.slices)
    return merged, last


def test_every_series_in_a_shown_view_is_visible_with_its_slice_and_the_last_touched(screen):
    screen.yellow_composite.SetBackgroundVolumeID(screen.b.GetID())
    screen.red_composite.SetBackgroundVolumeID(screen.a.GetID())  # Red touched last
    yellow_k = _expected_k(OBLIQUE, screen.yellow)
    assert on_screen(screen) == ({"1.2.B": [(1, float(yellow_k))], "1.2.A": [(0, 4.0)]}, "1.2.A")
    screen.red_composite.SetForegroundVolumeID(screen.b.GetID())  # B over A in Red, half transparent
    screen.red_composite.SetForegroundOpacity(0.5)
    shown, last = on_screen(screen)
    assert last == "1.2.A" and sorted(shown["1.2.B"]) == sorted([(1, float(yellow_k)), (1, float(_expected_k(OBLIQUE, screen.red)))])
    count = len(screen.visible)
    screen.red.SetSliceOffset(0.0)  # same slices: no new report
    assert len(screen.visible) == count
    screen.yellow.JumpSliceByCentering(0.0, 0.0, 5.0)  # Yellow scrolled: touched last
    assert on_screen(screen)[1] == "1.2.B" and screen.calls[-1][0] == "1.2.B"


def test_a_view_hidden_from_the_layout_stops_counting(screen):
    screen.yellow_composite.SetBackgroundVolumeID(screen.b.GetID())
    screen.red_composite.SetBackgroundVolumeID(screen.a.GetID())
    screen.red.SetMappedInLayout(True)
    screen.yellow.SetMappedInLayout(True)  # a layout manager shows both
    assert set(on_screen(screen)[0]) == {"1.2.A", "1.2.B"}
    screen.yellow.SetMappedInLayout(False)  # switched to a layout without Yellow
    assert on_screen(screen) == ({"1.2.A": [(0, 4.0)]}, "1.2.A")
    screen.yellow.SetMappedInLayout(True)
    screen.red.SetVisibility(False)  # Red hidden: its series goes, the focus moves to Yellow's
    assert on_screen(screen) == ({"1.2.B": [(1, float(_expected_k(OBLIQUE, screen.yellow)))]}, "1.2.B")


def test_a_volume_rendered_in_a_shown_3d_view_is_visible_without_a_slice(screen):
    slicer, scene = screen.slicer, screen.scene
    screen.red_composite.SetBackgroundVolumeID(screen.a.GetID())
    view = slicer.vtkMRMLViewNode()
    scene.AddNode(view)
    rendering = slicer.vtkMRMLGPURayCastVolumeRenderingDisplayNode()
    rendering.SetVisibility(False)
    scene.AddNode(rendering)
    screen.b.AddAndObserveDisplayNodeID(rendering.GetID())
    assert set(on_screen(screen)[0]) == {"1.2.A"}
    rendering.SetVisibility(True)
    assert on_screen(screen) == ({"1.2.A": [(0, 4.0)], "1.2.B": []}, "1.2.A")
    rendering.SetViewNodeIDs(["vtkMRMLViewNodeOther"])  # rendered in another 3D view only
    assert set(on_screen(screen)[0]) == {"1.2.A"}
    rendering.RemoveAllViewNodeIDs()
    view.SetMappedInLayout(True)
    screen.red.SetMappedInLayout(True)
    view.SetVisibility(False)  # the 3D view is not in the layout
    assert set(on_screen(screen)[0]) == {"1.2.A"}


def test_series_on_screen_complete_first_the_last_touched_first_and_the_hidden_one_is_covered_early(
        slice_views, orthanc, sample_small):
    """Yellow shows B, Red shows A (touched last), C is shown nowhere; the switch comes while every
    series is still queued. A completes first, then B, then C; C's first coarse volume (the
    coverage floor) comes before A completes."""
    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.scene.scene_loader import SceneLoader

    a, b, c = (sample_small.series(key) for key in ("ct_thin", "ct_sagittal", "ct_thick"))
    loader = SceneLoader(DicomwebServer(orthanc.dicomweb_url), show=False, connections=2)
    events = []
    try:
        loader.engine.pause()
        node_a, node_b, node_c = loader.load(a.study_uid, [a.series_uid, b.series_uid, c.series_uid])
        slice_views.yellow_composite.SetBackgroundVolumeID(node_b.GetID())
        slice_views.red_composite.SetBackgroundVolumeID(node_a.GetID())
        assert loader.engine.scheduler.visible.series() == (a.series_uid, b.series_uid)
        loader.engine.resume()
        while not loader.engine.finished():
            events += loader.process().events
            time.sleep(0.005)
        events += loader.process().events
    finally:
        loader.close()
    complete = {e.series_uid: e.t for e in events if e.event == "complete"}
    assert complete[a.series_uid] < complete[b.series_uid] < complete[c.series_uid]
    floor = {e.series_uid: e.t for e in events if e.event == "stage" and e.stage == "every-8"}
    assert floor[c.series_uid] < complete[a.series_uid]
    focus = [e for e in events if e.event == "focus"]
    assert focus[-1].series_uid == a.series_uid and focus[-1].visible == (a.series_uid, b.series_uid)
