"""What the user looks at, read from MRML views, to steer the focus boost: every series shown in a
visible view (the visible set) and the one in the view touched last.

Slicer keeps no "active slice view", so the view the user last touched wins: scrolled (its
SliceToRAS changed), given another volume (its composite node's volumes changed) or entered with
the mouse (the crosshair node's cursor slice node). Red is the fallback. Views are paired slice
node <-> composite node by layout name, like vtkMRMLSliceLogic::GetSliceCompositeNode does.
The visible set: background and (visible) foreground of every slice view shown in the layout, with
the slice each shows, and every volume rendered in a shown 3D view. MRML only (no Qt); every
callback runs on the main thread, in MRML observers.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..engine.focus_policy import Shown

logger = logging.getLogger(__name__)

Resolve = Callable[[str], Optional[Tuple[str, int]]]  # volume node ID -> (series UID, volume index)
SetFocus = Callable[[str, Optional[int], int], None]  # (series UID, slice index k, volume index)
SetVisible = Callable[[Sequence[Shown], Optional[str]], None]  # (series on screen, the last touched)

SLICE = "vtkMRMLSliceNode"
COMPOSITE = "vtkMRMLSliceCompositeNode"
CROSSHAIR = "vtkMRMLCrosshairNode"
VIEW_3D = "vtkMRMLViewNode"
RENDERING = "vtkMRMLVolumeRenderingDisplayNode"
FALLBACK_LAYOUT = "Red"


class FocusWatcher:
    """Calls `set_focus(series, k, volume)` when the last touched view's (series, slice, volume)
    changes, and `set_visible(shown, last_touched)` when anything on screen does (either may be None)."""

    def __init__(self, scene: Any, resolve: Resolve, set_focus: Optional[SetFocus] = None,
                 set_visible: Optional[SetVisible] = None) -> None:
        from vtkmodules.util.misc import calldata_type
        from vtkmodules.util.vtkConstants import VTK_OBJECT

        self._scene = scene
        self._resolve = resolve
        self._set_focus = set_focus
        self._set_visible = set_visible
        self._last_visible: Optional[Tuple[Tuple[Shown, ...], Optional[str]]] = None
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
        for class_name in (SLICE, COMPOSITE, CROSSHAIR, VIEW_3D, RENDERING):
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
        elif node.IsA(VIEW_3D) or node.IsA(RENDERING):  # shown or hidden, rendered or not
            tags = [node.AddObserver("ModifiedEvent", lambda _node, _event: self._update())]
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
                      if node.IsA(SLICE) or node.IsA(COMPOSITE)}
        self._active = None
        self._last = None
        self._last_visible = None

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

    def _shown(self, view_node: Any) -> bool:
        """Visible in the layout; without a layout manager (no view mapped), every view counts."""
        if view_node.IsViewVisibleInLayout():
            return True
        return not any(node.IsMappedInLayout() for node in self._of_class(SLICE) + self._of_class(VIEW_3D))

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
        focus = self._focus_in(view, composite) if composite is not None else None
        if focus is not None and focus != self._last:  # not one of ours: the last focus stays
            self._last = focus
            logger.debug("focus: series %s slice %s volume %d (view %s)", focus[0], focus[1], focus[2],
                         view.GetLayoutName())
            self._call(self._set_focus, *focus)
        visible = (tuple(self._visible()), self._last[0] if self._last is not None else None)
        if visible != self._last_visible and (visible[0] or self._last_visible is not None):
            self._last_visible = visible
            logger.debug("visible: %s, last touched %s", [item.series for item in visible[0]], visible[1])
            self._call(self._set_visible, *visible)

    @staticmethod
    def _call(callback: Optional[Callable[..., None]], *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:  # an MRML observer must not raise
            logger.exception("focus callback failed for %s", args)

    def _visible(self) -> List[Shown]:
        """Every series of ours on screen: slice views' layers with their slice, 3D renderings."""
        shown: List[Shown] = []
        for name, view in self._views().items():
            composite = self._composite(name)
            if composite is None or not self._shown(view):
                continue
            for volume_id in self._layers(composite):
                known = self._resolve(volume_id)
                volume = self._scene.GetNodeByID(volume_id) if known else None
                if volume is not None:
                    k = slice_at_center(view, volume)
                    shown.append(Shown(known[0], () if k is None else ((known[1], float(k)),)))
        views_3d = [view.GetID() for view in self._of_class(VIEW_3D) if self._shown(view)]
        for rendering in self._of_class(RENDERING):
            volume = rendering.GetDisplayableNode()
            known = self._resolve(volume.GetID()) if volume is not None else None
            if known and rendering.GetVisibility() and any(rendering.IsDisplayableInView(v) for v in views_3d):
                shown.append(Shown(known[0]))
        return shown

    @staticmethod
    def _layers(composite: Any) -> List[str]:
        """The background, and the foreground when it is not fully transparent."""
        layers = [composite.GetBackgroundVolumeID()]
        if composite.GetForegroundOpacity() > 0:
            layers.append(composite.GetForegroundVolumeID())
        return [volume_id for volume_id in layers if volume_id]

    def _focus_in(self, view: Any, composite: Any) -> Optional[Tuple[str, Optional[int], int]]:
        """The background if ours, else a visible foreground; with the slice k at the view centre."""
        for volume_id in self._layers(composite):
            known = self._resolve(volume_id)
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
