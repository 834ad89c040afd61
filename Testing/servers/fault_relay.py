"""A real TCP relay between the client and a real server (Orthanc) that injects scripted HTTP faults.

Orthanc never resets a connection mid-body, sends a wrong Content-Length or stalls; a relay on
127.0.0.1 does, on real sockets, so the client's and the engine's fault handling runs for real.
It understands just enough HTTP/1.1 (request heads, Content-Length and chunked response bodies)
to keep connections alive and to pick a fault per request: `Fault(kind, path=regex, times=N,
skip=M)` fires on the (M+1)-th to (M+N)-th requests whose path matches. Responses are relayed
with a Content-Length (chunked ones are decoded first). When the upstream server is down (e.g.
restarting), the client's connection is reset, as a direct connection would be refused.
`relay.requests` records what crossed the wire per request (method, path, request headers,
status and body size sent back), for tests that assert on the wire rather than on our counters.
"""
from __future__ import annotations

import logging
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

logger = logging.getLogger(__name__)

RESET = "reset"  # head and part of the body, then a TCP RST
TRUNCATE = "truncate"  # head and part of the body, then a clean close (FIN)
LONG_LENGTH = "long-length"  # Content-Length larger than the body, then close
SHORT_LENGTH = "short-length"  # Content-Length smaller than the body; the rest follows on the connection
STATUS = "status"  # an error status (500/502/503/429...) answered by the relay, optional Retry-After
STALL = "stall"  # part of the answer (or nothing), then silence for `stall_s`, then close
DRIP = "drip"  # the whole answer, slowly: `rate` bytes per second
KINDS = (RESET, TRUNCATE, LONG_LENGTH, SHORT_LENGTH, STATUS, STALL, DRIP)
HEAD_LIMIT = 64 * 1024


@dataclass
class Fault:
    """One scripted fault; `times` None fires on every matching request after the first `skip`."""

    kind: str
    path: str = ""  # regular expression searched in the request path ("" matches all)
    times: Optional[int] = 1
    skip: int = 0
    status: int = 503
    retry_after: Optional[str] = None
    fraction: float = 0.5  # of the body sent before a reset, truncation or stall
    stall_s: float = 5.0
    rate: float = 64 * 1024.0  # bytes per second for DRIP
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; choose one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class RelayedRequest:
    """What crossed the relay for one request: the client's head and what was sent back."""

    method: str
    path: str
    headers: Dict[str, str]  # request headers, names lower-cased
    status: int  # of the answer sent to the client (a fault's status, or upstream's)
    body_bytes: int  # body bytes of that answer (the whole body, even when a fault cut it short)
    fault: Optional[str] = None  # the fault kind that hit it


class _Reader:
    """Buffered reads from a socket: HTTP heads, exact byte counts, chunked bodies."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def head(self) -> Optional[bytes]:
        """Bytes up to and including the blank line; None at a clean end of the connection."""
        while b"\r\n\r\n" not in self.buffer:
            if len(self.buffer) > HEAD_LIMIT:
                raise ValueError("HTTP head too long")
            if not self._fill():
                if self.buffer:
                    raise ConnectionError("connection closed inside an HTTP head")
                return None
        end = self.buffer.index(b"\r\n\r\n") + 4
        head, self.buffer = self.buffer[:end], self.buffer[end:]
        return head

    def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self._fill():
                raise ConnectionError(f"connection closed after {len(self.buffer)} of {count} body bytes")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("connection closed inside a chunked body")
        end = self.buffer.index(b"\r\n")
        line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
        return line

    def chunked(self) -> bytes:
        parts = []
        while True:
            size = int(self.line().split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self.line():  # trailers up to the blank line
                    pass
                return b"".join(parts)
            parts.append(self.exactly(size))
            self.line()

    def until_close(self) -> bytes:
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data


def _parse_head(head: bytes) -> Tuple[str, List[Tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: List[Tuple[str, str]], name: str) -> Optional[str]:
    return next((value for key, value in headers if key.lower() == name.lower()), None)


def _build_head(start: str, headers: List[Tuple[str, str]], length: int) -> bytes:
    kept = [(k, v) for k, v in headers if k.lower() not in ("content-length", "transfer-encoding")]
    lines = [start] + [f"{k}: {v}" for k, v in kept] + [f"Content-Length: {length}", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0) rather than a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultRelay:
    """Listens on 127.0.0.1 (a free port), relays to `upstream_port`; start()/stop() or `with`."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.faults: List[Fault] = []
        self.counters: Counter = Counter()  # requests, connections, bytes_up, bytes_down, fault kinds
        self.requests: List[RelayedRequest] = []  # every request answered, in order
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._listener: Optional[socket.socket] = None

    # -- control ---------------------------------------------------------------------------------
    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def requests_to(self, pattern: str) -> List[RelayedRequest]:
        """The recorded requests whose path matches the regular expression `pattern`."""
        with self._lock:
            return [r for r in self.requests if re.search(pattern, r.path)]

    def _record(self, method: str, path: str, headers: List[Tuple[str, str]], status: int, body: int,
                fault: Optional[Fault]) -> None:
        record = RelayedRequest(method, path, {k.lower(): v for k, v in headers}, status, body,
                                fault.kind if fault is not None else None)
        with self._lock:
            self.requests.append(record)

    def fired(self) -> Dict[str, int]:
        with self._lock:
            return {kind: self.counters[kind] for kind in KINDS if self.counters[kind]}

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the relay is not running")
        return int(self._listener.getsockname()[1])

    @property
    def dicomweb_url(self) -> str:
        """The relayed DICOMweb root (Orthanc's `/dicom-web`)."""
        return f"http://127.0.0.1:{self.port}/dicom-web"

    def start(self) -> "FaultRelay":
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._spawn(self._accept, "fault-relay-accept")
        logger.info("fault relay 127.0.0.1:%d -> %s:%d", self.port, *self.upstream)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every socket (listener, clients, upstreams) and join every relay thread."""
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets)
            if self._listener is not None:
                sockets.append(self._listener)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"fault relay threads still running: {alive}")

    def __enter__(self) -> "FaultRelay":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------------
    def _spawn(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets = [s for s in self._sockets if s.fileno() >= 0] + [sock]
        return sock

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.counters["connections"] += 1
            self._spawn(self._serve, "fault-relay-conn", self._track(client))

    def _match(self, path: str) -> Optional[Fault]:
        with self._lock:
            self.counters["requests"] += 1
            for fault in self.faults:
                if fault.path and not re.search(fault.path, path):
                    continue
                fault.seen += 1
                if fault.seen > fault.skip and (fault.times is None or fault.fired < fault.times):
                    fault.fired += 1
                    self.counters[fault.kind] += 1
                    return fault
            return None

    def _connect(self) -> Optional[socket.socket]:
        try:
            return self._track(socket.create_connection(self.upstream, timeout=30))
        except OSError as error:
            logger.info("relay: cannot connect to %s:%d (%s)", *self.upstream, error)
            with self._lock:
                self.counters["upstream_down"] += 1
            return None

    def _serve(self, client: socket.socket) -> None:
        reader = _Reader(client)
        upstream: Optional[socket.socket] = None
        try:
            while not self._stopping.is_set():
                head = reader.head()
                if head is None:
                    break
                start, headers = _parse_head(head)
                length = int(_header(headers, "Content-Length") or 0)
                request = head + (reader.exactly(length) if length else b"")
                method, path = (start.split(" ") + ["", ""])[:2]
                fault = self._match(path)
                if fault is not None and fault.kind == STATUS:
                    body = f"relay fault: HTTP {fault.status}\n".encode()
                    extra = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
                    self._send(client, _build_head(f"HTTP/1.1 {fault.status} Fault", extra, len(body)) + body)
                    self._record(method, path, headers, fault.status, len(body), fault)
                    continue
                answer = None
                for _ in range(2):  # a kept-alive upstream connection may have been closed meanwhile
                    if upstream is None:
                        upstream = self._connect()
                        if upstream is None:
                            break
                    try:
                        answer = self._forward(upstream, request, method)
                        break
                    except (OSError, ValueError) as error:
                        logger.info("relay: upstream failed on %s (%r); reconnecting", path, error)
                        upstream.close()
                        upstream = None
                if answer is None:
                    _reset(client)  # as a refused direct connection would look to the client
                    return
                self._record(method, path, headers, int(answer[0].split(" ")[1]), len(answer[2]), fault)
                if not self._answer(client, answer, fault):
                    return
        except (OSError, ValueError):
            pass
        finally:
            if upstream is not None:
                upstream.close()
            client.close()

    def _forward(self, upstream: socket.socket, request: bytes, method: str) -> Tuple[str, List[Tuple[str, str]], bytes]:
        upstream.sendall(request)
        with self._lock:
            self.counters["bytes_up"] += len(request)
        reader = _Reader(upstream)
        head = reader.head()
        if head is None:
            raise ConnectionError("upstream closed the connection")
        start, headers = _parse_head(head)
        status = int(start.split(" ")[1])
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif (_header(headers, "Transfer-Encoding") or "").lower() == "chunked":
            body = reader.chunked()
        elif _header(headers, "Content-Length") is not None:
            body = reader.exactly(int(_header(headers, "Content-Length")))
        else:
            body = reader.until_close()
        return start, headers, body

    def _send(self, client: socket.socket, data: bytes) -> None:
        client.sendall(data)
        with self._lock:
            self.counters["bytes_down"] += len(data)

    def _answer(self, client: socket.socket, answer: Tuple[str, List[Tuple[str, str]], bytes],
                fault: Optional[Fault]) -> bool:
        """Send the upstream answer, damaged as `fault` says; False when the connection is over."""
        start, headers, body = answer
        kind = fault.kind if fault is not None else None
        cut = int(len(body) * fault.fraction) if fault is not None else len(body)
        if kind is None:
            self._send(client, _build_head(start, headers, len(body)) + body)
            return True
        if kind in (RESET, TRUNCATE):
            self._send(client, _build_head(start, headers, len(body)) + body[:cut])
            if kind == RESET:
                _reset(client)
            return False
        if kind == LONG_LENGTH:
            self._send(client, _build_head(start, headers, len(body) + 1000) + body)
            return False
        if kind == SHORT_LENGTH:
            self._send(client, _build_head(start, headers, max(0, cut)) + body)
            return True
        if kind == STALL:
            if fault.fraction > 0:
                self._send(client, _build_head(start, headers, len(body)) + body[:cut])
            self._stopping.wait(fault.stall_s)
            return False
        data = _build_head(start, headers, len(body)) + body  # DRIP
        piece = max(1, int(fault.rate / 20))
        for offset in range(0, len(data), piece):
            if self._stopping.wait(piece / fault.rate):
                return False
            self._send(client, data[offset:offset + piece])
        return True
