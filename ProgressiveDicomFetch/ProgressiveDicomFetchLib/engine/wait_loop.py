"""The one main-thread wait loop: tick until the work is finished, or a timeout.

Scripts, the command line (`ProgressiveFetchEngine.run_until_finished`) and the scene
(`SceneLoader.wait`) block the same way; only what a tick does differs.
"""
from __future__ import annotations

import time
from typing import Callable, Optional


def run_until(finished: Callable[[], bool], tick: Callable[[], object], poll_s: float,
              timeout: Optional[float] = None) -> bool:
    """Call `tick()` every `poll_s` until `finished()` was true before a tick (so that tick saw
    the last changes); False when `timeout` seconds passed first."""
    limit = None if timeout is None else time.monotonic() + timeout
    while True:
        done = finished()
        tick()
        if done:
            return True
        if limit is not None and time.monotonic() > limit:
            return False
        time.sleep(poll_s)
