"""Where the frame cache lives unless told otherwise.

Outside Slicer: `$XDG_CACHE_HOME/ProgressiveDicomFetch/frames` (default `~/.cache/...`; on Windows
`%LOCALAPPDATA%`). Inside Slicer the module passes `slicer.app.cachePath + "/ProgressiveDicomFetch"`,
so the folder is always a constructor parameter of FrameCache, never a global.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

APP_FOLDER = "ProgressiveDicomFetch"
FRAMES_FOLDER = "frames"


def user_cache_root(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The user's cache folder: XDG_CACHE_HOME when set and absolute (the XDG rule), else the platform default."""
    environ = os.environ if environ is None else environ
    xdg = environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    if os.name == "nt" and environ.get("LOCALAPPDATA"):
        return Path(environ["LOCALAPPDATA"])
    return Path(environ.get("HOME") or os.path.expanduser("~")) / ".cache"


def default_cache_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    return user_cache_root(environ) / APP_FOLDER / FRAMES_FOLDER
