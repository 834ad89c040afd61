"""The engine's side of the concurrency controller (concurrency.py): answered requests and the
server's push-backs in, the limit on requests in flight out, remembered per server in its
`ServerTraits`; and the check a worker makes before it adds a connection.

Some servers serve only so many connections at once: Orthanc gives each keep-alive connection a
thread (`HttpThreadsCount`), and a request on one more connection waits unanswered until one of
the others idles (about 1 s). A slice sent that way would stall its stage, so a worker added when
the limit grows first asks for something cheap (HEAD of the service root: any status is an
answer) with a short read timeout, outside `DicomwebServer.get` because that timeout is per call;
unanswered, the limit stays below that connection for good (docs/links.md).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

import requests

from .concurrency import ConcurrencyController

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0  # TCP and TLS handshakes of a new connection: a few round trips on a far link


class LinkFollower:
    """One engine's concurrency controller and what it tells the server's traits. Only DICOMweb
    servers (they have traits) follow the link; a PACS counts associations, its pool stays fixed."""

    def __init__(self, server, connections: int, max_connections: Optional[int]) -> None:
        self.server = server
        self.traits = getattr(server, "traits", None)
        self.controller: Optional[ConcurrencyController] = None
        if max_connections is not None and max_connections > connections and self.traits is not None:
            start = self.traits.concurrency(server) or connections
            self.controller = ConcurrencyController(start, 1, max_connections, floor=connections)
        self._push_backs = self.traits.push_backs(server) if self.traits is not None else 0
        self._lock = threading.Lock()

    @property
    def workers(self) -> Optional[int]:
        """Worker threads the engine needs (None: as many as its connections)."""
        return self.controller.maximum if self.controller is not None else None

    def answered(self, started: float, nbytes: int) -> Optional[int]:
        """One request answered (`nbytes` on the wire since `started`, monotonic), and any push-back
        since the last; the limit (None: nothing learnt)."""
        if self.controller is None:
            return None
        now = time.monotonic()
        push_backs = self.traits.push_backs(self.server)
        with self._lock:
            pushed, self._push_backs = push_backs > self._push_backs, push_backs
        if pushed:
            return self.controller.push_back()
        if nbytes > 0:  # nothing on the wire (cached, or already good enough) says nothing
            return self.controller.sample(now, nbytes, now - started)
        return None

    def served(self) -> bool:
        """Does the server answer on this thread's connection (new, or idle and perhaps closed by it)?"""
        assert self.controller is not None  # asked only when the limit follows the link
        return connection_served(self.server, self.controller.join_timeout())

    def cap(self, connections: int) -> int:
        """The server left a new connection unanswered while serving `connections` others of ours:
        at most that many from now on (never below the engine's fixed pool); the limit."""
        assert self.controller is not None
        return self.controller.cap(max(connections, self.controller.floor))

    def remember(self, limit: int) -> None:
        """What the next engine on this server starts from."""
        if self.traits is not None:
            self.traits.remember_concurrency(self.server, limit)


def connection_served(server, read_timeout_s: float) -> bool:
    """True when the server answers on this thread's connection within `read_timeout_s` (any HTTP
    status, or a failure other than a timeout: the real requests will report it)."""
    try:
        server.connection().head(server.url, timeout=(CONNECT_TIMEOUT_S, read_timeout_s), allow_redirects=False)
    except requests.Timeout:
        logger.info("no answer on a new connection to %s within %.2f s", server.url, read_timeout_s)
        return False
    except requests.RequestException as error:
        logger.debug("new connection to %s: %s", server.url, error)
    return True
