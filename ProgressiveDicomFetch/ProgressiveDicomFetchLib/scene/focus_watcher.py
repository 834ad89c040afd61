"""Which series and slice the user looks at, read from MRML slice views, to steer the focus boost.

Slicer keeps no "active slice view", so the view the user last touched wins: scrolled (its
SliceToRAS changed), given another volume (its composite node's volumes changed) or entered with
the mouse (the crosshair node's cursor slice node). Red is the fallback. Views are paired slice
node <-> composite node by layout name, like vtkMRMLSliceLogic::GetSliceCompositeNode does.
MRML only (no Qt); every callback runs on the main thread, in MRML observers.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

Resolve = Callable[[str], Optional[Tuple[str, int]]]  # volume node ID -> (series UID, volume index)
SetFocus = Callable[[str, Optional[int], int], None]  # (series UID, slice index k, volume index)

SLICE = "vtkMRMLSliceNode"
COMPOSITE = "vtkMRMLSliceCompositeNode"
CROSSHAIR = "vtkMRMLCrosshairNode"
FALLBACK_LAYOUT = "Red"


class FocusWatcher:
    """Calls `set_focus(series, k, volume)` when the viewed (series, slice, volume) changes."""

    def __init__(self, scene: Any, resolve: Resolve, set_focus: SetFocus) -> None:
        from vtkmodules.util.misc import calldata_type
        from vtkmodules.util.vtkConstants import VTK_OBJECT

        self._scene = scene
        self._resolve = resolve
        self._set_focus = set_focus
        self._nodes: Dict[str, Tuple[Any, List[int]]] = {}  # node ID -> (node, observer tags)
        self._seen: Dict[str, Any] = {}  # node ID -> last shown volumes / slice pose
        self._active: Optional[str] = None  # layout name of the view the user last touched
        self._last: Optional[Tuple[str, Optional[int], int]] = None

        @calldata_type(VTK_OBJECT)
        def node_added(_scene: Any, _event: str, node: Any) -> None:
            self._observe(node)
            self._update()

        @calldata_type(VTK_OBJECT)
        def node_removed(_scene: Any, _event: str, node: Any) -> None:
            self._forget(node)
            self._update()

        self._scene_tags = [
            scene.AddObserver(scene.NodeAddedEvent, node_added),
            scene.AddObserver(scene.NodeRemovedEvent, node_removed),
            scene.AddObserver(scene.EndCloseEvent, self._on_scene_closed),
        ]
        for class_name in (SLICE, COMPOSITE, CROSSHAIR):
            for index in range(scene.GetNumberOfNodesByClass(class_name)):
                self._observe(scene.GetNthNodeByClass(index, class_name))
        self._update()

    def refresh(self) -> None:
        """Re-evaluate now, e.g. after `resolve` learnt a volume node that is already shown."""
        self._update()

    def stop(self) -> None:
        """Remove every observer; no callback after this (idempotent)."""
        for tag in self._scene_tags:
            self._scene.RemoveObserver(tag)
        self._scene_tags = []
        for node, tags in list(self._nodes.values()):
            for tag in tags:
                node.RemoveObserver(tag)
        self._nodes.clear()
        self._seen.clear()

    # -- observation ---------------------------------------------------------------------------
    def _observe(self, node: Any) -> None:
        node_id = node.GetID() if node is not None else None
        if node_id is None or node_id in self._nodes:
            return
        if node.IsA(CROSSHAIR):
            tags = [node.AddObserver(node.CursorPositionModifiedEvent, self._on_cursor)]
        elif node.IsA(SLICE) or node.IsA(COMPOSITE):
            tags = [node.AddObserver("ModifiedEvent", self._on_view_modified)]
            self._seen[node_id] = self._state(node)
        else:
            return
        self._nodes[node_id] = (node, tags)

    def _forget(self, node: Any) -> None:
        node_id = node.GetID() if node is not None else None
        entry = self._nodes.pop(node_id, None)
        self._seen.pop(node_id, None)
        if entry is not None:
            for tag in entry[1]:
                entry[0].RemoveObserver(tag)

    def _on_scene_closed(self, _scene: Any, _event: str) -> None:
        """Singleton views survive a close (reset); other nodes went. Start afresh."""
        for node, _tags in list(self._nodes.values()):
            if self._scene.GetNodeByID(node.GetID()) is not node:
                self._forget(node)
        self._seen = {node_id: self._state(node) for node_id, (node, _tags) in self._nodes.items()
                      if not node.IsA(CROSSHAIR)}
        self._active = None
        self._last = None

    @staticmethod
    def _state(node: Any) -> Tuple[Any, ...]:
        """What counts as a user touch: the volumes a composite shows, the pose of a slice."""
        if node.IsA(COMPOSITE):
            return node.GetBackgroundVolumeID(), node.GetForegroundVolumeID()
        matrix = node.GetSliceToRAS()
        return tuple(matrix.GetElement(row, col) for row in range(3) for col in range(4))

    def _on_view_modified(self, node: Any, _event: str) -> None:
        state = self._state(node)
        if state != self._seen.get(node.GetID()):
            self._seen[node.GetID()] = state
            self._touch(node.GetLayoutName())
        self._update()

    def _on_cursor(self, crosshair: Any, _event: str) -> None:
        slice_node = crosshair.GetCursorPositionXYZ([0.0, 0.0, 0.0])
        if slice_node is not None:
            self._touch(slice_node.GetLayoutName())
            self._update()

    def _touch(self, layout_name: Optional[str]) -> None:
        slice_node = self._views().get(layout_name) if layout_name else None
        if slice_node is not None and self._shown(slice_node):
            self._active = layout_name

    # -- evaluation ----------------------------------------------------------------------------
    def _of_class(self, class_name: str) -> List[Any]:
        return [node for node, _tags in self._nodes.values() if node.IsA(class_name)]

    def _views(self) -> Dict[str, Any]:
        """Layout name -> slice node (the first one, in scene order)."""
        views: Dict[str, Any] = {}
        for node in self._of_class(SLICE):
            views.setdefault(node.GetLayoutName(), node)
        return views

    def _shown(self, slice_node: Any) -> bool:
        """Visible in the layout; without a layout manager (nothing mapped), every view counts."""
        if slice_node.IsViewVisibleInLayout():
            return True
        return not any(node.IsMappedInLayout() for node in self._of_class(SLICE))

    def _current_view(self) -> Optional[Any]:
        views = self._views()
        for name in (self._active, FALLBACK_LAYOUT):
            if name in views and self._shown(views[name]):
                return views[name]
        return next((node for node in views.values() if self._shown(node)), None)

    def _composite(self, layout_name: str) -> Optional[Any]:
        return next((node for node in self._of_class(COMPOSITE) if node.GetLayoutName() == layout_name), None)

    def _update(self) -> None:
        if not self._scene_tags or self._scene.IsClosing():
            return
        view = self._current_view()
        composite = self._composite(view.GetLayoutName()) if view is not None else None
        if composite is None:
            return
        focus = self._focus_in(view, composite)
        if focus is None or focus == self._last:
            return  # not one of ours: the last focus stays
        self._last = focus
        logger.debug("focus: series %s slice %s volume %d (view %s)", focus[0], focus[1], focus[2],
                     view.GetLayoutName())
        try:
            self._set_focus(*focus)
        except Exception:  # an MRML observer must not raise
            logger.exception("set_focus failed for %s", focus)

    def _focus_in(self, view: Any, composite: Any) -> Optional[Tuple[str, Optional[int], int]]:
        """The background if ours, else a visible foreground; with the slice k at the view centre."""
        layers = [composite.GetBackgroundVolumeID()]
        if composite.GetForegroundOpacity() > 0:
            layers.append(composite.GetForegroundVolumeID())
        for volume_id in layers:
            known = self._resolve(volume_id) if volume_id else None
            volume = self._scene.GetNodeByID(volume_id) if known else None
            if volume is not None:
                return known[0], slice_at_center(view, volume), known[1]
        return None


def slice_at_center(slice_node: Any, volume_node: Any) -> Optional[int]:
    """Index k (0-based, along the volume's K axis) at the view centre, clamped into the volume.

    Clamped, not dropped: a view beyond the end looks at the nearest end slice. None without
    image data. The volume's parent transform counts when it is linear, as in
    vtkMRMLSliceLogic::GetSliceIndexFromOffset.
    """
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    image = volume_node.GetImageData()
    if image is None:
        return None
    slices = image.GetDimensions()[2]
    center = [slice_node.GetSliceToRAS().GetElement(row, 3) for row in range(3)] + [1.0]
    transform = volume_node.GetParentTransformNode()
    if transform is not None and transform.IsTransformToWorldLinear():
        from_world = vtkMatrix4x4()
        transform.GetMatrixTransformFromWorld(from_world)
        center = list(from_world.MultiplyPoint(center))
    ras_to_ijk = vtkMatrix4x4()
    volume_node.GetRASToIJKMatrix(ras_to_ijk)
    k = int(round(ras_to_ijk.MultiplyPoint(center)[2]))
    return min(max(k, 0), slices - 1) if slices > 0 else None
