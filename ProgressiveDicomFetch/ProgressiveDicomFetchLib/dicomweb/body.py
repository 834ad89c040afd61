"""Reading a response body with limits: a size cap on the *decoded* bytes and a whole-body deadline.

A server may send garbage: an endless or oversized body, a gzip bomb (requests decompresses
transparently, so the cap counts decoded bytes), or a slow drip that never trips the per-read
timeout. Each ends here with a clear error instead of exhausting memory or holding a worker.
Interruptions (reset, truncation, wrong Content-Length, read timeout) are raised as
`BodyInterrupted` so the caller can retry the idempotent request.
"""
from __future__ import annotations

import heapq
import socket
import threading
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import requests

from .errors import BadResponse, ServerUnreachable

CHUNK = 64 * 1024
MiB = 1024 * 1024


@dataclass(frozen=True)
class BodyLimits:
    """Per request type: JSON (search, metadata) and pixel data bodies; `seconds` bounds a whole body."""

    json_bytes: int = 512 * MiB  # metadata of a 3000-instance series is ~60 MB of JSON
    frame_bytes: int = 2048 * MiB  # one request carries at most a batch of frames of one object
    seconds: float = 600.0


class BodyTooLarge(BadResponse):
    """The (decoded) body went beyond the cap for its request type: refused, not retried."""


class BodyInterrupted(Exception):
    """The body stopped before its end (reset, truncation, read timeout): worth another try."""

    def __init__(self, cause: Exception, received: int) -> None:
        super().__init__(f"{type(cause).__name__} after {received} bytes")
        self.cause = cause
        self.received = received


def read_body(response: requests.Response, url: str, max_bytes: int, seconds: float) -> bytes:
    """The whole decoded body of a streamed response, or an error that names the limit it broke.

    The response is closed on error; on success its `.content` is set, so `.json()` works as usual.
    """
    declared = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if declared.isdigit() and not encoded and int(declared) > max_bytes:
        response.close()
        raise BodyTooLarge(f"GET {url}: the answer announces {int(declared)} bytes, more than the "
                           f"{max_bytes} bytes allowed for this request", url, response.status_code)
    late = ServerUnreachable(f"GET {url}: the answer did not arrive within {seconds:g} s", url)
    watchdog = _Watchdog(response, seconds)
    chunks = []
    received = 0
    try:
        for chunk in response.iter_content(CHUNK):
            received += len(chunk)
            if received > max_bytes:
                what = "decompresses to" if encoded else "is"
                raise BodyTooLarge(f"GET {url}: the answer {what} more than the {max_bytes} bytes allowed for "
                                   "this request (refused)", url, response.status_code)
            if watchdog.expired:
                raise late
            chunks.append(chunk)
        if watchdog.expired:  # the cut connection may look like a clean end
            raise late
    except (requests.exceptions.RequestException, OSError) as error:
        response.close()
        if watchdog.expired:
            raise late from None
        if isinstance(error, requests.exceptions.ContentDecodingError):
            raise BadResponse(f"GET {url}: the compressed answer cannot be decompressed "
                              f"({response.headers.get('Content-Encoding')})", url, response.status_code) from None
        if isinstance(error, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                              requests.exceptions.Timeout)):
            raise BodyInterrupted(error, received) from None
        raise
    except BaseException:
        response.close()
        raise
    finally:
        watchdog.cancel()
    data = b"".join(chunks)
    response._content = data  # what requests itself sets after reading a non-streamed body
    response._content_consumed = True
    return data


class _Watchdog:
    """Cuts the connection when a body takes longer than `seconds`: a read blocks until its whole
    chunk arrives, so a drip of a byte per second would never let the loop check the time.
    One timer thread serves every body (`_Deadlines`): a thread per body cost ~0.8 ms a request."""

    def __init__(self, response: requests.Response, seconds: float) -> None:
        self.expired = False
        self.cancelled = False
        self.socket = _socket_of(response)
        if self.socket is not None:
            _DEADLINES.watch(self, seconds)

    def expire(self) -> None:
        self.expired = True
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        if self.socket is not None:
            _DEADLINES.cancel(self)


class _Deadlines:
    """The bodies being read and when each must end; one daemon thread, started on first use."""

    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, _Watchdog]] = []
        self._count = 0
        self._live = 0
        self._condition = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def watch(self, watchdog: _Watchdog, seconds: float) -> None:
        with self._condition:
            self._count += 1
            self._live += 1
            heapq.heappush(self._heap, (time.monotonic() + seconds, self._count, watchdog))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pdf-body-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is watchdog:
                self._condition.notify()  # an earlier deadline than the one waited for

    def cancel(self, watchdog: _Watchdog) -> None:
        """Cancelled bodies leave the heap lazily, or all at once when they outnumber the live ones."""
        with self._condition:
            if watchdog.cancelled or watchdog.expired:
                return
            watchdog.cancelled = True
            watchdog.socket = None
            self._live -= 1
            if len(self._heap) > 2 * self._live + 64:
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)

    def _run(self) -> None:
        with self._condition:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                self._live -= 1
                heapq.heappop(self._heap)[2].expire()


_DEADLINES = _Deadlines()


def _socket_of(response: requests.Response) -> Optional[socket.socket]:
    """The connection's socket (urllib3 1.26 and 2.x keep it on the raw response's connection)."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None
