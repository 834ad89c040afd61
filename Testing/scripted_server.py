"""A real HTTP server on 127.0.0.1 that answers from a script, for behaviour Orthanc cannot produce.

Orthanc 1.10 never sends 429/503 with Retry-After and has no bearer tokens; this server does,
over real sockets, so the client's retry and token-refresh code runs for real. Each answer is
(status, headers, body); requests are recorded (path, headers) for the assertions.
"""
from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple

Answer = Tuple[int, Dict[str, str], bytes]


def json_answer(body: object, status: int = 200, headers: Optional[Dict[str, str]] = None) -> Answer:
    return status, {"Content-Type": "application/dicom+json", **(headers or {})}, json.dumps(body).encode()


@dataclass
class Recorded:
    path: str
    headers: Dict[str, str]
    at: float


@dataclass
class ScriptedServer:
    """`respond(request_number, path, headers) -> Answer` decides every answer."""

    respond: Callable[[int, str, Dict[str, str]], Answer]
    requests: List[Recorded] = field(default_factory=list)
    tls: Optional[ssl.SSLContext] = None  # serve HTTPS with this context

    def __enter__(self) -> "ScriptedServer":
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                headers = {k: v for k, v in self.headers.items()}
                owner.requests.append(Recorded(self.path, headers, time.monotonic()))
                status, answer_headers, body = owner.respond(len(owner.requests), self.path, headers)
                self.send_response(status)
                for name, value in answer_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}/dicom-web"

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
