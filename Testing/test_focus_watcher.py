"""FocusWatcher on a real MRML scene (slicer-core): the view the user touched decides the focus.

Slice views are made as Slicer makes them, without Qt: the application logic adds the slice
orientation presets, the layout logic creates the Red/Green/Yellow slice nodes, one slice logic per
view creates its composite node; the crosshair node is added like qSlicerCoreApplication does.
"""
from __future__ import annotations

import gc
import math
import weakref
from typing import Any, List, Tuple

import numpy as np
import pytest

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
