"""What the code learns about a server while it works with it, kept in one place.

Per series, the frame route that worked (the syntax to ask for, one frame per request on static
trees that keep one file per frame: frames.py says why); per server, whether it honours HTTP
Range (learnt by the first preview probe, never assumed), whether it sends whole instances
(instances.py), how many requests in flight paid last time (engine/concurrency.py) and how often
it pushed back (HTTP 429/503). Each `DicomwebServer` carries one
(`server.traits`), shared by all its connections; learnt once, it spares every later request the
probing. Thread-safe. Servers are told apart by URL, so one traits object may also serve several.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Protocol, Tuple

logger = logging.getLogger(__name__)


class Located(Protocol):
    """A server as the traits see it: its URL (DicomwebServer has one; it imports this module)."""

    url: str


@dataclass(frozen=True)
class FrameRoute:
    """What worked for a series on a server: the syntax asked for, and one frame per request."""

    syntax: str
    one_per_request: bool = False


class ServerTraits:
    def __init__(self) -> None:
        self._routes: Dict[Tuple[str, str], FrameRoute] = {}
        self._ranges: Dict[str, bool] = {}
        self._concurrency: Dict[str, int] = {}
        self._push_backs: Dict[str, int] = {}
        self._instances: Dict[str, bool] = {}
        self._asking_ranges: Dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def route(self, server: Located, series_uid: str) -> Optional[FrameRoute]:
        with self._lock:
            return self._routes.get((server.url, series_uid))

    def remember_route(self, server: Located, series_uid: str, route: FrameRoute) -> None:
        with self._lock:
            previous = self._routes.get((server.url, series_uid))
            self._routes[(server.url, series_uid)] = route
        if previous != route:
            logger.info("frames of series %s on %s: asking %s%s", series_uid, server.url, route.syntax,
                        ", one frame per request" if route.one_per_request else "")

    def ranges(self, server: Located) -> Optional[bool]:
        """True: the server honours Range; False: it ignores it; None: not asked yet."""
        with self._lock:
            return self._ranges.get(server.url)

    @contextlib.contextmanager
    def asking_ranges(self, server: Located) -> Iterator[Optional[bool]]:
        """Whether `server` honours Range, once it is this caller's turn: None means ask it (and
        `learn_ranges` within the block). While it is not known, one caller at a time holds the
        block, so the probes of a study's other series wait for one answer, not for a whole probe,
        and then skip asking."""
        with self._lock:
            known = self._ranges.get(server.url)
            asking = self._asking_ranges.setdefault(server.url, threading.Lock())
        if known is not None:
            yield known
            return
        with asking:
            yield self.ranges(server)

    def learn_ranges(self, server: Located, honoured: bool) -> None:
        with self._lock:
            self._ranges[server.url] = honoured

    def concurrency(self, server: Located) -> Optional[int]:
        """The requests in flight that paid on this server last time (None: not learnt yet)."""
        with self._lock:
            return self._concurrency.get(server.url)

    def remember_concurrency(self, server: Located, limit: int) -> None:
        with self._lock:
            self._concurrency[server.url] = int(limit)

    def push_backs(self, server: Located) -> int:
        """How many times the server answered 429/503 (busy) so far."""
        with self._lock:
            return self._push_backs.get(server.url, 0)

    def note_push_back(self, server: Located) -> None:
        with self._lock:
            self._push_backs[server.url] = self._push_backs.get(server.url, 0) + 1

    def instances(self, server: Located) -> Optional[bool]:
        """True: the server sends whole instances (Part-10 files); False: it refused; None: not asked yet."""
        with self._lock:
            return self._instances.get(server.url)

    def learn_instances(self, server: Located, offered: bool) -> None:
        with self._lock:
            previous = self._instances.get(server.url)
            self._instances[server.url] = offered
        if previous != offered:
            logger.info("%s: whole-instance retrieval %s", server.url, "works" if offered else "is not offered")

    def clear(self) -> None:
        with self._lock:
            self._concurrency.clear()
            self._push_backs.clear()
            self._routes.clear()
            self._ranges.clear()
            self._instances.clear()
