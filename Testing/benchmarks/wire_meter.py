"""Bytes on the namespace's loopback over time, sampled by a thread while a contender runs: where a
rate-limited fetch loses link time (before the first frame, during the transfer, in the tail).
"""
from __future__ import annotations

import threading
import time
from typing import Dict, List, Optional, Sequence

from netns import loopback_bytes

INTERVAL_S = 0.05


class WireMeter:
    """`with WireMeter(start) as meter:` samples (seconds since `start`, bytes since entry)."""

    def __init__(self, start: float, interval_s: float = INTERVAL_S) -> None:
        self.start = start
        self.interval_s = interval_s
        self.samples: List[List[float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wire-meter", daemon=True)
        self._base = 0

    def __enter__(self) -> "WireMeter":
        self._base = loopback_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._record()

    def _record(self) -> None:
        self.samples.append([round(time.monotonic() - self.start, 3), loopback_bytes() - self._base])

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._record()


def link_phases(samples: Sequence[Sequence[float]], rate_bps: float, end_s: float,
                window_s: float = 0.1) -> Dict[str, Optional[float]]:
    """Where the link time goes: before the link first runs at >= half the rate over `window_s`
    (requests and metadata: no pixels flow yet), the link's use from then until it last does
    (the transfer), and the tail from then to `end_s` (the last frames' decode, the last request)."""
    empty: Dict[str, Optional[float]] = {"busy_from_s": None, "busy_utilisation": None, "tail_s": None}
    busy = []
    for i, (t, n) in enumerate(samples):
        later = next(((t2, n2) for t2, n2 in samples[i + 1:] if t2 - t >= window_s), None)
        if later is not None and (later[1] - n) * 8 / (later[0] - t) >= 0.5 * rate_bps:
            busy.append((i, later))
    if not busy:
        return empty
    first, last = samples[busy[0][0]], busy[-1][1]
    if last[0] <= first[0]:
        return empty
    return {"busy_from_s": first[0], "busy_utilisation": (last[1] - first[1]) * 8 / rate_bps / (last[0] - first[0]),
            "tail_s": max(0.0, end_s - last[0])}
