"""How many requests to keep in flight: follows the link rather than a fixed number of connections.

On a far link one request per connection leaves the link idle for most of each round trip; the
requests needed to fill it are about bandwidth x delay / request size (docs/links.md). Neither is
known in advance, so the limit is found like TCP finds its window: from the start (the remembered
limit of this server, or a guess), double it each window while the throughput rises (slow start),
then add a quarter; when a step brings no more throughput, go back to the best limit seen and hold
(probing one more now and then); shrink when the server pushes back (429/503) or when its answers
slow down (latency x2) while throughput falls (an overloaded server). A window ends once `limit`
requests have answered (about one round trip) and at least 0.1 s has passed (on a near link a few
answers take milliseconds: their rate is noise); the window after a change is skipped, its
answers are to requests sent before it. A server that leaves a new connection unanswered serves
only so many at once: `cap` sets a ceiling there, lifted only by a probe one above it that pays
(engine/link_follower.py).
Pure arithmetic on the samples it is fed (times come with them), so tests drive it directly.
"""
from __future__ import annotations

import logging
import statistics
import threading
from dataclasses import dataclass, field
from typing import List, Optional

logger = logging.getLogger(__name__)

RISE = 1.15  # a window's throughput this much above the best so far counts as rising
LATENCY_GROWTH = 2.0  # median latency this many times the lowest seen, with no more throughput: a queue
SHRINK = 0.75  # the limit's factor on push-back or latency growth
DECAY = 0.97  # per window at the plateau: the best throughput seen fades towards what the link gives now
PROBE_EVERY = 8  # windows at a plateau before probing one step up again (the link may have freed up)
JOIN_TIMEOUT_S = 0.5  # a new connection's first answer may take this, or 4 lowest latencies if longer
PIPE_HEADROOM = 2.0  # grow only while the limit is below this many times what the pipe holds (+1)
MIN_WINDOW_S = 0.1  # a window lasts at least this long: on a near link `limit` answers take a few ms, too noisy to judge


@dataclass
class _Window:
    started: float
    bytes: int = 0
    latencies: List[float] = field(default_factory=list)


class ConcurrencyController:
    """The limit on requests in flight, between `minimum` and `maximum`; below `floor` (default
    `minimum`) only when the server pushes back: slower answers alone may be the machine's load,
    and the engine's fixed pool was never smaller. Thread-safe."""

    def __init__(self, start: int = 4, minimum: int = 1, maximum: int = 32, floor: Optional[int] = None) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"concurrency bounds must satisfy 1 <= minimum <= maximum (got {minimum}, {maximum})")
        self.minimum, self.maximum = minimum, maximum
        self.floor = minimum if floor is None else min(max(floor, minimum), maximum)
        self._limit = min(max(int(start), minimum), maximum)
        self._slow_start = True
        self._best_rate = 0.0
        self._best_limit = self._limit
        self._base_latency = float("inf")
        self._flat = 0
        self._probing = False
        self._settling = False
        self.ceiling = maximum  # lowered when the server leaves a new connection unanswered (cap)
        self._window: _Window = None  # type: ignore[assignment]  # opened by the first sample
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        with self._lock:
            return self._limit

    def sample(self, now: float, nbytes: int, latency_s: float) -> int:
        """One request answered at `now` (seconds, any clock) with `nbytes` in `latency_s`; the limit."""
        with self._lock:
            if self._window is None:  # the first answer opens the first window (its bytes came before)
                self._window = _Window(now)
                return self._limit
            window = self._window
            window.bytes += nbytes
            window.latencies.append(latency_s)
            if len(window.latencies) >= self._limit and now >= window.started + MIN_WINDOW_S:
                if self._settling:  # answers to requests sent before the last change: not its effect
                    self._settling = False
                else:
                    rate, latency = window.bytes / (now - window.started), statistics.median(window.latencies)
                    pipe = len(window.latencies) / (now - window.started) * min(window.latencies)
                    logger.debug("window: limit %d, %.0f KB/s, latency %.1f ms, pipe %.1f", self._limit, rate / 1e3,
                                 1e3 * latency, pipe)
                    self._decide(rate, latency, self._limit >= PIPE_HEADROOM * pipe + 1)
                self._window = _Window(now)
            return self._limit

    def push_back(self) -> int:
        """The server said it is busy (429/503): fewer requests at once, no more slow start."""
        with self._lock:
            self._slow_start = False
            self._set(int(self._limit * SHRINK))
            self._best_limit = min(self._best_limit, self._limit)
            return self._limit

    def join_timeout(self) -> float:
        """How long a new connection's first (cheap) answer may take: a served one takes a round trip."""
        with self._lock:
            lowest = self._base_latency if self._base_latency < float("inf") else 0.0
            return max(JOIN_TIMEOUT_S, 4 * lowest)

    def cap(self, connections: int) -> int:
        """The server left a new connection unanswered while serving `connections` of ours (it
        serves only so many at once: link_follower.py): the limit stays at most that, but for a probe
        one above now and then (other clients may have let theirs go); the limit."""
        with self._lock:
            self.ceiling = max(self.minimum, min(self.ceiling, connections))
            self._slow_start = False
            self._set(min(self._limit, self.ceiling))
            self._best_limit = min(self._best_limit, self._limit)
            return self._limit

    def _decide(self, rate: float, latency: float, full: bool) -> None:
        """`full`: the requests in flight already cover the pipe (Little's law: answers a second x the
        quickest answer's latency, with headroom); more would only queue (a near link, our CPU)."""
        self._base_latency = min(self._base_latency, latency)
        probed, self._probing = self._probing, False
        if rate > self._best_rate * RISE:  # rising: double in slow start or after a probe that paid
            self._best_rate, self._best_limit, self._flat = rate, self._limit, 0
            if probed:
                self.ceiling = self.maximum  # the server served one more than before: no ceiling known
            if full:
                self._slow_start = False
                return
            self._set(self._limit * 2 if self._slow_start or probed else self._limit + max(1, self._limit // 4))
            return
        self._slow_start = False
        if latency > LATENCY_GROWTH * self._base_latency and rate * RISE < self._best_rate:
            self._set(max(self.floor, int(self._limit * SHRINK)))  # slower answers, less throughput: overloaded
            self._best_limit = min(self._best_limit, self._limit)
            self._base_latency = latency  # once per change: a farther link looks the same, and stays
            return
        if self._limit > self._best_limit:
            self._set(self._best_limit)  # the last step brought nothing: back to the best
            return
        self._flat += 1
        if rate * 2 < self._best_rate:  # the link changed (farther, or shared): probe now
            self._flat = PROBE_EVERY
        self._best_rate = max(rate, self._best_rate * DECAY) if rate * 2 >= self._best_rate else rate
        if self._flat >= PROBE_EVERY and not full:  # one step up now and then: it stays only if it pays
            self._flat, self._probing = 0, True
            self.ceiling = max(self.ceiling, min(self._limit + 1, self.maximum))  # it may serve one more now
            self._set(self._limit + 1)

    def _set(self, limit: int) -> None:
        limit = min(max(limit, self.minimum), self.maximum, self.ceiling)
        self._settling = limit != self._limit
        self._limit = limit
