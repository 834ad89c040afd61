"""A far link in user space: a TCP relay on 127.0.0.1 that delays every byte by a one-way delay per
direction and meters each direction through one token bucket shared by all connections.

The kernel here has no netem, so a relay emulates latency: it reproduces latency-bound versus
bandwidth-bound behaviour (requests in flight, round trips), not TCP slow start or loss. Bytes are
relayed as they come, not per HTTP message, so a client may pipeline and keep many connections
busy; each chunk leaves once the shared link has serialised it (the bucket) plus the delay. The
relay reuses FaultRelay's listener, socket tracking and stop(); it also stops relaying after
`lifetime_s`, so a forgotten relay cannot hold a test forever.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections import deque
from typing import Deque, Optional, Tuple

from .fault_relay import FaultRelay

logger = logging.getLogger(__name__)

CHUNK = 16 * 1024  # bytes read at a time: ~1.3 ms of a 100 Mbit/s link
DEFAULT_BURST = 16 * 1024  # bytes the link may send at once after idling (tbf's burst)


class LinkBucket:
    """A token bucket on a virtual clock, shared by every connection of one direction: `reserve`
    returns when the link will have sent `size` more bytes (it never blocks the reader)."""

    def __init__(self, rate_bps: Optional[float], burst: int = DEFAULT_BURST) -> None:
        if rate_bps is not None and rate_bps <= 0:
            raise ValueError(f"link rate must be positive bits per second, not {rate_bps}")
        self.rate = None if rate_bps is None else rate_bps / 8.0  # bytes per second
        self.burst = burst
        self._free_at = 0.0
        self._lock = threading.Lock()

    def reserve(self, size: int, now: float) -> float:
        if self.rate is None:
            return now
        with self._lock:
            start = max(self._free_at, now - self.burst / self.rate)
            self._free_at = start + size / self.rate
            return max(now, self._free_at)


class _Pipe:
    """One direction of one connection: chunks stamped with when they may leave, sent in order."""

    def __init__(self, relay: "LatencyRelay", source: socket.socket, target: socket.socket, bucket: LinkBucket) -> None:
        self.relay, self.source, self.target, self.bucket = relay, source, target, bucket
        self.chunks: Deque[Tuple[float, bytes]] = deque()
        self.ready = threading.Condition()
        self.ended = False

    def read(self) -> None:
        try:
            while not self.relay.expired():
                data = self.source.recv(CHUNK)
                if not data:
                    break
                now = time.monotonic()
                due = self.bucket.reserve(len(data), now) + self.relay.delay_s
                with self.ready:
                    self.chunks.append((due, data))
                    self.ready.notify()
        except OSError:
            pass
        finally:
            with self.ready:
                self.ended = True
                self.ready.notify()

    def send(self) -> None:
        try:
            while True:
                with self.ready:
                    while not self.chunks and not self.ended and not self.relay.expired():
                        self.ready.wait(0.2)
                    if not self.chunks:
                        break
                    due, data = self.chunks.popleft()
                wait = due - time.monotonic()
                if wait > 0 and self.relay._stopping.wait(wait):
                    break
                self.target.sendall(data)
            self.target.shutdown(socket.SHUT_WR)  # the other side's FIN, delayed like its bytes
        except OSError:
            pass


class LatencyRelay(FaultRelay):
    """`rtt_s` split evenly over the two directions; `rate_bps` per direction, shared by all
    connections (None: unlimited). Loopback only, at both ends."""

    def __init__(self, upstream_port: int, rtt_s: float, rate_bps: Optional[float] = None,
                 upstream_host: str = "127.0.0.1", lifetime_s: float = 900.0, burst: int = DEFAULT_BURST) -> None:
        if not ipaddress.ip_address(upstream_host).is_loopback:
            raise ValueError(f"the latency relay only relays to loopback, not {upstream_host}")
        if rtt_s < 0 or lifetime_s <= 0:
            raise ValueError(f"rtt_s must be >= 0 and lifetime_s > 0 (got {rtt_s}, {lifetime_s})")
        super().__init__(upstream_port, upstream_host)
        self.delay_s = rtt_s / 2.0
        self.rtt_s = rtt_s
        self.up = LinkBucket(rate_bps, burst)
        self.down = LinkBucket(rate_bps, burst)
        self.lifetime_s = lifetime_s
        self._deadline = float("inf")

    def start(self) -> "LatencyRelay":
        self._deadline = time.monotonic() + self.lifetime_s
        super().start()
        logger.info("latency relay: %.0f ms round trip, %s", 1000 * self.rtt_s,
                    "unlimited" if self.down.rate is None else f"{self.down.rate * 8 / 1e6:.0f} Mbit/s")
        return self

    def expired(self) -> bool:
        return self._stopping.is_set() or time.monotonic() > self._deadline

    def _serve(self, client: socket.socket) -> None:
        """Two pipes (client -> server, server -> client), each a reader and a sender thread."""
        upstream = self._connect()
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)  # idle keep-alive connections stay open, as on a direct link
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipes = (_Pipe(self, client, upstream, self.up), _Pipe(self, upstream, client, self.down))
        for pipe in pipes:
            self._spawn(pipe.read, "latency-relay-read")
            self._spawn(pipe.send, "latency-relay-send")
