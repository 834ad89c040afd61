"""The scene binding: series into a MRML scene, a volume node per volume as soon as the metadata
is in (before any pixel), refined in place from the engine's buffers, with views and focus wired up.

It is given an engine and does nodes, refreshes, node states and focus; the loading itself
(pause, cancel) is asked of the engine. Main thread only: `process()` is the tick (Slicer's
module calls it from a QTimer; scripts call `wait()`), everything else happens in the engine's
workers. Loading a series that is already loading or loaded returns its existing nodes (no second
download). Closing the binding (or the scene) closes its engine.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..engine import EngineUpdate, ProgressiveFetchEngine, SeriesProgress
from ..engine.events import EngineEvent, EventKind
from ..engine.wait_loop import run_until
from ..loading import VolumeLoad
from ..retrieve import prepare_series
from ..volume.coarseness import level_name
from .partial_marking import NodeMark, NodeMarker, NodeState
from .subject_hierarchy import ItemNaming, place_in_hierarchy
from .volume_node import create_volume_node, refresh, series_node_name
from .window_level import covered_window

logger = logging.getLogger(__name__)

Key = Tuple[str, int]  # (series UID, volume index)
REFRESH_INTERVAL_S = 0.1  # at most ~10 redraws a second per volume; the last change always lands


class SceneLoader:
    def __init__(self, engine: ProgressiveFetchEngine, scene: Any = None, show: bool = True,
                 refresh_interval_s: float = REFRESH_INTERVAL_S, watch_focus: bool = True) -> None:
        import slicer

        self.slicer = slicer
        self.scene = scene if scene is not None else slicer.mrmlScene
        self.engine = engine
        self.server = engine.server
        self.show = show
        self.refresh_interval_s = refresh_interval_s
        self.nodes: Dict[Key, Any] = {}
        self._loads: Dict[Key, VolumeLoad] = {}
        self._by_node_id: Dict[str, Key] = {}
        self._stale: Dict[Key, bool] = {}
        self._last_refresh: Dict[Key, float] = {}
        self._windowed: set = set()
        self._states: Dict[Key, NodeState] = {}  # absent: loading
        self._requested: set = set()  # series UIDs given to the engine
        self._shown = False
        self._closed = False
        self._unrefreshable: set = set()  # keys whose node failed to refresh: never tried again
        self._callbacks: List[Callable[[List[SeriesProgress]], None]] = []
        self._naming = ItemNaming.from_slicer(slicer)  # the user's subject hierarchy naming settings
        self.marker = NodeMarker(slicer, self.scene)  # state, name suffix, real fraction (docs/slicer.md)
        import vtk

        self._on_node_removed.__func__.CallDataType = vtk.VTK_OBJECT  # receive the removed node
        self._observers = [
            (self.scene, self.scene.AddObserver(self.scene.NodeRemovedEvent, self._on_node_removed)),
            (self.scene, self.scene.AddObserver(self.scene.StartCloseEvent, lambda caller, event: self.close())),
        ]
        self.focus_watcher = None
        if watch_focus:
            from .focus_watcher import FocusWatcher

            self.focus_watcher = FocusWatcher(self.scene, self.resolve, set_visible=self.engine.set_visible)

    # -- requests ----------------------------------------------------------------------------
    def load(self, study_uid: str, series_uids: Sequence[str], wait_for_metadata: bool = True) -> List[Any]:
        """Volume nodes of the series, returned at once with their final geometry (the metadata
        is fetched now, in parallel); their voxels arrive progressively. Raises only if no series
        could be loaded; the others' errors are logged and kept in `errors`.

        `wait_for_metadata=False` (the panel) returns at once: the engine's workers fetch the
        metadata and `process()` creates the nodes when it is in; errors arrive as events."""
        wanted = [uid for uid in series_uids if not any(key[0] == uid for key in self.nodes)
                  and uid not in self._requested]
        if not wait_for_metadata:
            for uid in wanted:
                self.engine.add_series(study_uid, uid)
                self._requested.add(uid)
            return [self.nodes[key] for uid in series_uids for key in sorted(self.nodes) if key[0] == uid]
        with ThreadPoolExecutor(max_workers=max(1, min(4, len(wanted)))) as pool:
            results = list(pool.map(lambda uid: self._prepare(study_uid, uid), wanted))
        self.errors = [error for _, _, error in results if error is not None]
        for uid, loads, error in results:
            if error is not None:
                logger.error(error)
                continue
            for index, load in enumerate(loads):
                self._add_node((uid, index), load, len(loads))
            self.engine.add_series(study_uid, uid, loads=loads)
            self._requested.add(uid)
        nodes = [self.nodes[key] for uid in series_uids for key in sorted(self.nodes) if key[0] == uid]
        if not nodes and self.errors:
            raise self.errors[0]
        return nodes

    def _prepare(self, study_uid: str, series_uid: str):
        try:
            return series_uid, prepare_series(self.server, study_uid, series_uid, self.engine.fill), None
        except Exception as error:  # DicomwebError, GeometryError, the memory check: reported per series
            return series_uid, None, error

    def _add_node(self, key: Key, load: VolumeLoad, count: int) -> None:
        node = create_volume_node(self.scene, load, series_node_name(load, key[1], count))
        place_in_hierarchy(self.slicer, self.scene, node, load.geometry.dataset, key[0], self._naming)
        if node.GetDisplayNode() is not None and node.GetDisplayNode().GetNumberOfWindowLevelPresets():
            self._windowed.add(key)
        self.nodes[key], self._loads[key] = node, load
        self._by_node_id[node.GetID()] = key
        self._mark(key)
        if self.show and not self._shown:
            self._show(node)
            self._shown = True

    def resolve(self, node_id: str) -> Optional[Key]:
        """Which (series, volume) a node is loading, for the focus watcher."""
        return self._by_node_id.get(node_id)

    def on_progress(self, callback: Callable[[List[SeriesProgress]], None]) -> None:
        """`callback(snapshots)` after each tick that changed something."""
        self._callbacks.append(callback)

    # -- main thread -------------------------------------------------------------------------
    def process(self, budget_ms: float = 5.0, yield_ms: float = 0.0) -> EngineUpdate:
        """One tick: engine events in, coalesced node refreshes out (at most one per volume per
        `refresh_interval_s`, and a final one when the volume is done)."""
        update = self.engine.pump(budget_ms, yield_ms)
        for uid, index, load in update.new_volumes:  # series loaded without waiting for their metadata
            if (uid, index) not in self.nodes:
                self._add_node((uid, index), load, len(self.engine.loads(uid)))
                self._stale[(uid, index)] = True  # slices may have landed before the node existed
        for key in update.dirty:
            if key in self.nodes:
                self._stale[key] = True
        now = time.monotonic()
        finished = self.engine.finished()
        ended = {e.series_uid for e in update.events if e.event in (EventKind.COMPLETE, EventKind.CANCELLED, EventKind.ERROR)}
        changed = self._take_states(ended) if ended else set()  # marked with the refresh that follows
        for key, stale in list(self._stale.items()):
            if stale and key not in self._unrefreshable and (finished or key in changed or now - self._last_refresh.get(key, 0.0) >= self.refresh_interval_s):
                try:
                    self._refresh(key, now)
                except Exception as error:  # e.g. its image replaced by another module: stop that series only
                    update.events.append(self._broken(key, error))
        if update and self._callbacks:
            snapshots = self.engine.progress()
            for callback in list(self._callbacks):
                try:
                    callback(snapshots)
                except Exception as error:
                    logger.exception("progress callback %r failed; it is removed", callback)
                    self._callbacks.remove(callback)
                    update.events.append(EngineEvent(self.engine.elapsed(), "", EventKind.ERROR,
                                                     message=f"a progress callback failed and was removed: {error}"))
        return update

    def _broken(self, key: Key, error: Exception) -> EngineEvent:
        """A node that cannot be refreshed: its series is cancelled and the error reported once."""
        logger.exception("node of series %s cannot be refreshed; its loading is cancelled", key[0])
        self._unrefreshable.add(key)
        self.engine.cancel(key[0])
        return EngineEvent(self.engine.elapsed(), key[0], EventKind.ERROR,
                           message=f"its volume node could not be updated ({type(error).__name__}: {error}); loading stopped")

    def _refresh(self, key: Key, now: float) -> None:
        load, node = self._loads[key], self.nodes[key]
        loaded = load.volume.loaded_slices() if key not in self._windowed and load.volume.components == 1 else []
        if loaded and node.GetDisplayNode() is not None:  # no DICOM preset: from the first real slices (RGB as it is)
            center, width = covered_window(load.volume.array[loaded], load.geometry.padding_value)
            node.GetDisplayNode().SetWindowLevel(width, center)  # once: no jump while refining
            self._windowed.add(key)
        modifying = node.StartModify()  # the mark and the refresh: one ModifiedEvent
        self._mark(key)
        refresh(node)
        node.EndModify(modifying)
        self._stale[key] = False
        self._last_refresh[key] = now

    def _take_states(self, series_uids: set) -> set:
        """The engine's state of these series for their nodes; the keys whose state changed, to refresh
        now (an error event for a slice that is retried changes nothing: the rate limit holds; slices
        in flight when a series stopped land later and update its fractions at their refresh)."""
        states = {p.series_uid: NodeState.of_series(p.state) for p in self.engine.progress() if p.series_uid in series_uids}
        keys = {key for key in self.nodes
                if key[0] in states and states[key[0]] != self._states.get(key, NodeState.LOADING)}
        for key in keys:
            self._states[key], self._stale[key] = states[key[0]], True
        return keys

    def _mark(self, key: Key) -> None:
        """The node's state, name suffix and real fractions as of now (scene/partial_marking.py)."""
        load = self._loads[key]
        level = level_name(load.volume.coarseness([f is not None for f in load.geometry.slices]).level)
        mark = NodeMark.of_volume(self._states.get(key, NodeState.LOADING), load.volume.counts(), level)
        self.marker.mark(self.nodes[key], mark, list(load.geometry.instance_uids))

    def wait(self, timeout: Optional[float] = None, poll_s: float = 0.01,
             on_idle: Optional[Callable[[], None]] = None) -> bool:
        """Block (pumping events) until every requested series is done; False on timeout.
        `on_idle` runs after each tick (Slicer: slicer.app.processEvents, so the views repaint)."""
        def tick() -> None:
            self.process()
            if on_idle is not None:
                on_idle()

        done = run_until(self.finished, tick, poll_s, timeout)
        if done:
            self.process()  # the last refresh always lands
        return done

    def finished(self) -> bool:
        """Nothing left to do: every series done, or the loader closed (e.g. by a scene close)."""
        return self._closed or self.engine.finished()

    @property
    def closed(self) -> bool:
        return self._closed

    def progress(self) -> List[SeriesProgress]:
        return self.engine.progress()

    def close(self) -> None:
        """Stop loading (workers gone within a second), stop watching the scene."""
        self._closed = True
        self.engine.close()
        if self.focus_watcher is not None:
            self.focus_watcher.stop()
            self.focus_watcher = None
        for subject, tag in self._observers:
            subject.RemoveObserver(tag)
        self._observers = []

    # -- scene events ------------------------------------------------------------------------
    def _on_node_removed(self, caller: Any, event: Any, node: Any = None) -> None:
        key = self._by_node_id.pop(node.GetID(), None) if node is not None else None
        if key is None:
            return
        self.nodes.pop(key, None)
        self._stale.pop(key, None)
        self._states.pop(key, None)
        self.marker.forget(node.GetID())
        logger.info("node of series %s removed: its loading is cancelled", key[0])
        self.engine.cancel(key[0])

    def _show(self, node: Any) -> None:
        """The first volume in every slice view (Slicer: with fit; slicer-core: composite nodes only)."""
        try:
            self.slicer.util.setSliceViewerLayers(background=node, fit=True)
            return
        except Exception:  # no application (slicer-core): set the composite nodes directly
            pass
        for composite in self.scene.GetNodesByClass("vtkMRMLSliceCompositeNode"):
            composite.SetBackgroundVolumeID(node.GetID())
