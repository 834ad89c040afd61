"""The one main-thread wait loop: tick until the work is finished, or a timeout; and how long a
tick sleeps for the workers.

Scripts, the command line (`ProgressiveFetchEngine.run_until_finished`) and the scene
(`SceneLoader.wait`, `FetchSession.wait`) block the same way; only what a tick does differs.
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


YIELD_PER_JOB_MS = 2.0  # GIL-free sleep per job in flight in pump() (chosen by pump_designs.py)


def pump_yield_ms(in_flight: int, paused: bool, cap_ms: float) -> float:
    """How long a main-thread tick sleeps for the workers: nothing when none is working or the
    engine is paused (the GUI stays quick), else YIELD_PER_JOB_MS per job, at most `cap_ms`."""
    if paused or in_flight <= 0 or cap_ms <= 0:
        return 0.0
    return min(cap_ms, YIELD_PER_JOB_MS * in_flight)
