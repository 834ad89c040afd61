"""A link rate for the sample server: parsed from text ("30mbit") and enforced across connections.

On loopback a small study arrives in a blink, so the progressive stages cannot be seen; the demo
paces what its server sends. One limiter is shared by every connection, so the total rate is the
link's whatever the number of connections (like a real link, unlike a per-connection cap).
"""
from __future__ import annotations

import re
import threading
import time
from typing import Callable, Optional

UNITS = {"": 1.0, "bit": 1.0, "bps": 1.0, "kbit": 1e3, "kbps": 1e3, "mbit": 1e6, "mbps": 1e6,
         "gbit": 1e9, "gbps": 1e9}
NO_LIMIT = ("off", "none", "unlimited")
_RATE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*")


def parse_rate(text: str) -> Optional[float]:
    """'30mbit', '500kbit', '2.5Mbps', '8000000' (bits/s, decimal prefixes as tc) -> bits/s; 'off' -> None."""
    value = str(text).strip().lower()
    if value in NO_LIMIT:
        return None
    match = _RATE.fullmatch(value)
    if not match or match.group(2) not in UNITS:
        raise ValueError(f"rate {text!r}: give bits per second such as 30mbit, 500kbit, 2gbit or 8000000, "
                         f"or 'off' for no limit (bytes units like MB are not accepted)")
    bits = float(match.group(1)) * UNITS[match.group(2)]
    if bits <= 0:
        raise ValueError(f"rate {text!r} must be more than 0, e.g. 30mbit (or 'off' for no limit)")
    return bits


def format_rate(bits_per_s: Optional[float]) -> str:
    if bits_per_s is None:
        return "unthrottled"
    for unit, factor in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bits_per_s >= factor:
            return f"{bits_per_s / factor:g} {unit}"
    return f"{bits_per_s:g} bit/s"


class RateLimiter:
    """`wait(n)` before sending n bytes: every byte gets its departure time on one shared clock.

    Each call books the next n * 8 / rate seconds of the link (after whatever is already booked)
    and sleeps until that slot ends, so the total rate over all threads is `rate_bps`, and an idle
    link saves up no burst. `stop` wakes every sleeper (the server is shutting down).
    """

    def __init__(self, rate_bps: float, stop: Optional[threading.Event] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not rate_bps > 0:
            raise ValueError(f"rate must be a positive number of bits per second, not {rate_bps!r}")
        self.rate_bps = float(rate_bps)
        self._stop = stop or threading.Event()
        self._clock = clock
        self._lock = threading.Lock()
        self._booked_until = 0.0

    def wait(self, n: int) -> bool:
        """Block until n more bytes may go; False when stopped meanwhile (send nothing more)."""
        with self._lock:
            start = max(self._clock(), self._booked_until)
            self._booked_until = start + n * 8.0 / self.rate_bps
            due = self._booked_until
        delay = due - self._clock()
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()
