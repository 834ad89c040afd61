"""Per-frame breakdown of a fetch (issue 22): wall and thread-CPU time around each step a frame goes
through in the engine, summed per step over a run. Installed in the benchmark's own process only
(in_plane_run.py), by wrapping the library's functions where the engine calls them.

Wall minus CPU of a step that does no I/O (decode, rescale, write) is time spent waiting for the
GIL or a core; for the requests it also holds the network. Every wrapped call costs about 2 us.
"""
from __future__ import annotations

import functools
import threading
import time
from typing import Callable, Dict, List, Tuple

STEPS = ("GET Range prefix", "GET Range rest", "multipart parse", "decode prefix", "decode frame", "rescale",
         "write_slice (all)", "refill (drain)", "engine bookkeeping", "worker job (total)", "main: process_events")


class StepTimers:
    """Counts, wall and CPU seconds per step; `install()` wraps the library, `uninstall()` restores it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.totals: Dict[str, List[float]] = {step: [0, 0.0, 0.0] for step in STEPS}
        self._undo: List[Tuple[object, str, object]] = []

    def _timed(self, name_of: Callable[..., str], function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                with self._lock:
                    total = self.totals[name_of(args)]
                    total[0] += 1
                    total[1] += wall
                    total[2] += cpu
        return wrapper

    def _wrap(self, owner: object, attribute: str, name: str, name_of: Callable[..., str] = None) -> None:
        original = getattr(owner, attribute)
        self._undo.append((owner, attribute, original))
        setattr(owner, attribute, self._timed(name_of or (lambda args: name), original))

    def install(self) -> "StepTimers":
        from ProgressiveDicomFetchLib import loading
        from ProgressiveDicomFetchLib.engine import engine
        from ProgressiveDicomFetchLib.previews import htj2k_prefixes
        from ProgressiveDicomFetchLib.volume import progressive_volume

        self._wrap(htj2k_prefixes, "get_range", "", lambda args: "GET Range prefix" if args[3] == 0 else "GET Range rest")
        self._wrap(htj2k_prefixes, "frames_from_body", "multipart parse")
        self._wrap(htj2k_prefixes, "decode_prefix", "decode prefix")
        self._wrap(loading, "decode_frame", "decode frame")
        self._wrap(loading, "stored_to_modality", "rescale")
        volume = progressive_volume.ProgressiveVolume
        self._wrap(volume, "write_slice", "write_slice (all)")
        self._wrap(volume, "_drain", "refill (drain)")
        fetch = engine.ProgressiveFetchEngine
        self._wrap(fetch, "_slice_done", "engine bookkeeping")
        self._wrap(fetch, "_load_slices", "worker job (total)")
        self._wrap(fetch, "process_events", "main: process_events")
        return self

    def uninstall(self) -> None:
        while self._undo:
            owner, attribute, original = self._undo.pop()
            setattr(owner, attribute, original)

    def record(self) -> Dict[str, Dict[str, float]]:
        """{step: {"calls", "wall_s", "cpu_s"}} for the run's JSON."""
        with self._lock:
            return {step: {"calls": int(n), "wall_s": round(wall, 4), "cpu_s": round(cpu, 4)}
                    for step, (n, wall, cpu) in self.totals.items()}
