"""An embedded static DICOMweb server for first runs and self-tests (the demo, Slicer's "Sample server").

Serves a tree written by `static_tree.write_static_tree` the way Testing/servers/nginx.py does
(same URLs, content types, multipart or bare frames, gzip'd JSON siblings), from the Python
standard library only: a `ThreadingHTTPServer` on 127.0.0.1 and a free port, in a daemon thread,
started and stopped from Python (no subprocess, no signal handler), so it runs inside Slicer.

Limits, on purpose (the test suite keeps testing against Orthanc and nginx): QIDO query strings
(filters, includefield, limit, offset) are ignored and the whole list is returned; no Range, no
ETag; `frames/1,2` is 404 (one file per frame, as on static hosts: the client then asks one frame
per request); study-level `instances` and WADO-RS retrieve of whole instances are not served.
"""
from __future__ import annotations

import logging
import re
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Optional, Set, Tuple, Union
from urllib.parse import unquote, urlsplit

from .sample_cache import default_sample_dir, ensure_sample, ensure_sample_tree
from .static_tree import StaticInstance, StaticTree
from .throttle import RateLimiter

__all__ = ["SampleServer", "default_sample_dir", "ensure_sample", "ensure_sample_tree"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
PREFIX = "/dicom-web"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"
CHUNK_BYTES = 16 * 1024  # paced unit: small enough for a smooth rate, large enough to cost little
IDLE_TIMEOUT_S = 60.0  # a keep-alive connection nobody uses is closed after this
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_BULK = re.compile(r"[0-9A-F]{8}-[0-9]+")
_FRAME = re.compile(r"[1-9][0-9]{0,8}")
_FRAME_LIST = re.compile(r"[0-9]+(,[0-9]+)+")


class _Answer:
    """What a path resolves to: a file and its type, or an HTTP error with a one-line reason."""

    def __init__(self, status: int, reason: str = "", path: Optional[Path] = None,
                 content_type: str = OCTET_STREAM, gzip_sibling: bool = False) -> None:
        self.status, self.reason, self.path = status, reason, path
        self.content_type, self.gzip_sibling = content_type, gzip_sibling


class SampleServer:
    """`SampleServer(tree_root, rate_bps=None)`; `start()` returns the base URL; `stop()` ends it.

    `rate_bps`: total bits per second over all connections (None: as fast as loopback goes).
    """

    def __init__(self, tree_root: Union[str, Path], rate_bps: Optional[float] = None,
                 chunk_bytes: int = CHUNK_BYTES) -> None:
        self.tree = StaticTree.load(Path(tree_root).resolve())
        self.root = self.tree.root
        self.rate_bps = rate_bps
        self.chunk_bytes = int(chunk_bytes)
        self._instances: Dict[Tuple[str, str, str], StaticInstance] = {
            (i.study_uid, i.series_uid, i.sop_uid): i for i in self.tree.instances}
        self._stopping = threading.Event()
        self.limiter = RateLimiter(rate_bps, self._stopping) if rate_bps is not None else None
        self._httpd: Optional[_HTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._connections: Set[socket.socket] = set()
        self._handlers: Set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.url = ""

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> str:
        if self._httpd is not None:
            return self.url
        self._stopping.clear()
        self._httpd = _HTTPServer((HOST, 0), _Handler, self)
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}{PREFIX}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"pdf-sample-server-{port}", daemon=True)
        self._thread.start()
        logger.info("sample DICOMweb server at %s (%s)", self.url, self.root)
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close the listening socket and every open connection, join the threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()  # throttled senders wake up and give up
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections, handlers = list(self._connections), list(self._handlers)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # a handler waiting for the next request sees EOF
            except OSError:
                pass
        for handler in handlers:
            handler.join(timeout)
        if thread is not None:
            thread.join(timeout)
        self._httpd = self._thread = None
        logger.info("sample DICOMweb server %s stopped", self.url)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1]) if self._httpd is not None else 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "SampleServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- requests --------------------------------------------------------------------------------
    def resolve(self, raw_path: str) -> _Answer:
        """URL path -> file under the tree root: 400 for malformed paths, 404 for anything unknown."""
        path = unquote(urlsplit(raw_path).path)  # query strings are ignored, as on static hosts
        if "\x00" in path or "\\" in path:
            return _Answer(400, "bad characters in the path")
        if not path.startswith(PREFIX + "/") or path.endswith("/"):
            return _Answer(404, f"no such resource (resources are under {PREFIX}/, no trailing slash)")
        parts = path[len(PREFIX) + 1:].split("/")
        if any(part in ("", ".", "..") for part in parts):
            return _Answer(400, "empty, '.' or '..' path segment")
        if parts[0] != "studies":
            return _Answer(404, "only studies/... is served")
        uids = [parts[i] for i in (1, 3, 5) if i < len(parts)]
        if any(not _UID.fullmatch(uid) or len(uid) > 64 for uid in uids):
            return _Answer(400, "a UID holds digits and dots only, at most 64 characters")
        return self._route(parts)

    def _route(self, parts: list) -> _Answer:
        n = len(parts)
        if parts == ["studies"]:
            return self._file("studies/index.json", DICOM_JSON, gzip_sibling=True)
        if n == 3 and parts[2] == "series":
            return self._file(f"studies/{parts[1]}/series/index.json", DICOM_JSON, gzip_sibling=True)
        series = f"studies/{parts[1]}/series/{parts[3]}" if n >= 4 and parts[2] == "series" else None
        if series and n == 5 and parts[4] in ("instances", "metadata"):
            name = "instances/index.json" if parts[4] == "instances" else "metadata"
            return self._file(f"{series}/{name}", DICOM_JSON, gzip_sibling=True)
        if series and n == 8 and parts[4] == "instances" and parts[6] == "frames":
            instance = self._instances.get((parts[1], parts[3], parts[5]))
            if instance is None:
                return _Answer(404, "no such instance")
            if _FRAME_LIST.fullmatch(parts[7]):
                return _Answer(404, "one frame per request (a static tree has one file per frame)")
            if not _FRAME.fullmatch(parts[7]):
                return _Answer(400, "a frame number is a positive integer")
            return self._file(f"{series}/instances/{parts[5]}/frames/{parts[7]}",
                              self.tree.frame_content_type(instance))
        if series and n == 8 and parts[4] == "instances" and parts[6] == "bulkdata":
            if not _BULK.fullmatch(parts[7]):
                return _Answer(400, "bad bulk data name")
            return self._file(f"{series}/instances/{parts[5]}/bulkdata/{parts[7]}", OCTET_STREAM)
        return _Answer(404, "no such resource")

    def _file(self, relative: str, content_type: str, gzip_sibling: bool = False) -> _Answer:
        path = (self.root / relative).resolve()
        try:
            path.relative_to(self.root)  # never outside the tree, whatever the links say
        except ValueError:
            return _Answer(404, "outside the tree")
        if not path.is_file():
            return _Answer(404, "not found")
        return _Answer(200, "", path, content_type, gzip_sibling)

    def _track(self, connection: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
                self._handlers.add(threading.current_thread())
            else:
                self._connections.discard(connection)
                self._handlers.discard(threading.current_thread())


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Tuple[str, int], handler: type, sample: SampleServer) -> None:
        self.sample = sample
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host's FQDN (a DNS query); the name is known.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, int(self.server_address[1])


def _accepts_gzip(header: Optional[str]) -> bool:
    for item in (header or "").split(","):
        name, _, params = item.partition(";")
        if name.strip().lower() == "gzip":
            quality = params.strip().lower()
            if not quality.startswith("q="):
                return True
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
    return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    server_version = "ProgressiveDicomFetch-SampleServer"
    timeout = IDLE_TIMEOUT_S
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.sample._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sample._track(self.connection, False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        logger.debug("%s %s", self.address_string(), format % args)

    def _answer(self, send_body: bool) -> None:
        sample = self.server.sample
        answer = sample.resolve(self.path)
        if answer.status != 200 or answer.path is None:
            self._error(answer.status, answer.reason, send_body)
            return
        path, encoding = answer.path, None
        gzipped = path.with_name(path.name + ".gz")
        if answer.gzip_sibling and _accepts_gzip(self.headers.get("Accept-Encoding")) and gzipped.is_file():
            path, encoding = gzipped, "gzip"
        try:
            handle = open(path, "rb")
        except OSError:
            self._error(404, "not found", send_body)
            return
        with handle:
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(size))
            if answer.gzip_sibling:
                self.send_header("Vary", "Accept-Encoding")
            if encoding:
                self.send_header("Content-Encoding", encoding)
            self.end_headers()
            if send_body:
                self._send(handle, sample)

    def _send(self, handle, sample: SampleServer) -> None:
        try:
            while True:
                chunk = handle.read(sample.chunk_bytes)
                if not chunk:
                    return
                if sample.limiter is not None and not sample.limiter.wait(len(chunk)):
                    self.close_connection = True  # stopping: the client sees a short body
                    return
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("%s went away during %s", self.address_string(), self.path)
            self.close_connection = True

    def _error(self, status: int, reason: str, send_body: bool) -> None:
        body = f"{status}: {reason}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)
