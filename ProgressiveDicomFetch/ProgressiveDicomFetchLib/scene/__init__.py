"""Scene layer: MRML only (main thread). Volume nodes refined in place from the engine's buffers,
window/level, subject hierarchy, and focus taken from the slice views. Imports `slicer` and `vtk`
only inside functions: the core stays importable without Slicer."""
from __future__ import annotations

from .focus_watcher import FocusWatcher
from .scene_loader import REFRESH_INTERVAL_S, SceneLoader
from .volume_node import create_volume_node, refresh, series_node_name

__all__ = ["FocusWatcher", "REFRESH_INTERVAL_S", "SceneLoader", "create_volume_node", "refresh", "series_node_name"]
