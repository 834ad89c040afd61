"""Where the frame cache lives unless told otherwise.

Outside Slicer: `$XDG_CACHE_HOME/ProgressiveDicomFetch/frames` (default `~/.cache/...`; on Windows
`%LOCALAPPDATA%`). Inside Slicer the same folder, kept out of Slicer's cache folder: Slicer 5.12
prunes that folder at start-up by whole top-level entries, oldest first, until it is under its
limit (1000 MB by default; vtkCacheManager::PruneCache), so a 2 GB frame cache inside it would go
at once. Ours is pruned by its own LRU, frame by frame (see docs/slicer.md). The folder is always
a constructor parameter of FrameCache, never a global.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

APP_FOLDER = "ProgressiveDicomFetch"
FRAMES_FOLDER = "frames"


def _user_root(variable: str, fallback: str, environ: Optional[Mapping[str, str]]) -> Path:
    """An XDG folder: the variable when set and absolute (the XDG rule), else HOME/fallback
    (Windows: LOCALAPPDATA)."""
    environ = os.environ if environ is None else environ
    xdg = environ.get(variable, "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    if os.name == "nt" and environ.get("LOCALAPPDATA"):
        return Path(environ["LOCALAPPDATA"])
    return Path(environ.get("HOME") or os.path.expanduser("~")) / fallback


def user_cache_root(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The user's cache folder: XDG_CACHE_HOME, else ~/.cache."""
    return _user_root("XDG_CACHE_HOME", ".cache", environ)


def default_cache_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    return user_cache_root(environ) / APP_FOLDER / FRAMES_FOLDER


def user_data_root(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The user's data folder: XDG_DATA_HOME, else ~/.local/share."""
    return _user_root("XDG_DATA_HOME", os.path.join(".local", "share"), environ)


def cache_dir_outside(pruned_folder: "os.PathLike[str]", environ: Optional[Mapping[str, str]] = None) -> Path:
    """The frame cache folder for a host that prunes `pruned_folder` by whole entries (Slicer's
    cache folder): the user's cache folder (shared with the command line), or the user's data
    folder when the cache folder lies inside the pruned one. ValueError when both do."""
    pruned = Path(pruned_folder).resolve()
    candidates = (default_cache_dir(environ), user_data_root(environ) / APP_FOLDER / FRAMES_FOLDER)
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved != pruned and pruned not in resolved.parents:
            return candidate
    raise ValueError(f"no folder for the frame cache outside {pruned} (Slicer's cache folder, pruned at start-up): "
                     "set XDG_CACHE_HOME to a folder outside it")
