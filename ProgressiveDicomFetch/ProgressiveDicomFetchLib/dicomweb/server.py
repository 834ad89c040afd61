"""One DICOMweb server: base URL, authentication, TLS, timeouts, retries, and error mapping.

Every request of the library goes through `DicomwebServer.get`, so timeouts, retries with
backoff, `Retry-After`, the one-time token refresh on 401 and credential-free error messages
hold everywhere. Query strings are built here, not by requests' `params`: DICOM wildcards (`*`,
`?`) are sent unencoded because Orthanc 1.10 does not percent-decode QIDO values.
"""
from __future__ import annotations

import email.utils
import logging
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import quote, unquote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase

from .urls import redact_url, validate_base_url
from .auth import BasicAuth, TokenProvider
from .body import BodyInterrupted, BodyLimits, read_body
from .errors import AuthenticationFailed, BadResponse, DicomwebError, NotFound, ServerUnreachable
from .server_traits import ServerTraits

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json, application/json"
# Characters sent as they are in query values: unreserved ones plus what DICOM matching needs.
QUERY_SAFE = "-._~*?,:"
Params = Union[Mapping[str, Any], Sequence[Tuple[str, Any]]]
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5


class _BoundedWindow(HTTPAdapter):
    """Connections whose TCP receive buffer is `size` bytes (the kernel's autotuning off): the
    server may have only about that much of an answer on its way at a time."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["socket_options"] = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),  # urllib3's default, kept
                                    (socket.SOL_SOCKET, socket.SO_RCVBUF, self.size)]
        super().init_poolmanager(*args, **kwargs)


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Overrides the connection's auth for a request that must carry no credentials."""
    return request


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for idempotent requests: exponential backoff with jitter, `Retry-After` honoured."""

    attempts: int = 4
    backoff_s: float = 0.5
    max_wait_s: float = 30.0
    jitter: float = 0.25
    statuses: Tuple[int, ...] = (429, 500, 502, 503, 504)

    def wait(self, attempt: int, response: Optional[requests.Response] = None) -> float:
        """Seconds to wait before try number `attempt + 1`."""
        if response is not None:
            advised = retry_after_seconds(response.headers.get("Retry-After"))
            if advised is not None:
                return min(advised, self.max_wait_s)
        base = self.backoff_s * (2 ** (attempt - 1))
        return min(base * (1 + random.uniform(-self.jitter, self.jitter)), self.max_wait_s)


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """`Retry-After` as seconds (it may be a number or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def encode_query(params: Params) -> str:
    """A query string with DICOM matching characters left as they are (see module docstring)."""
    items = params.items() if isinstance(params, Mapping) else params
    parts = []
    for key, value in items:
        if value is None:
            continue
        parts.append(f"{quote(str(key), safe=QUERY_SAFE)}={quote(str(value), safe=QUERY_SAFE)}")
    return "&".join(parts)


class DicomwebServer:
    """A DICOMweb service root, e.g. `http://localhost:8042/dicom-web`.

    `verify` is True (system CAs), a CA bundle path, or False (explicit opt-out, logged).
    `timeout` is (connect, read) seconds and applies to every request; `limits` caps each body's
    decoded size (per request type) and the time it may take.
    Redirects are followed here, not by requests: to another origin (scheme, host, port) they go
    without the auth object and the extra `headers`, which requests would otherwise still send.
    Credentials given in the URL (`https://user:password@host/...`) become HTTP Basic auth and
    are removed from the URL, so no message or log can show them.
    """

    def __init__(
        self,
        url: str,
        auth: Optional[AuthBase] = None,
        headers: Optional[Mapping[str, str]] = None,
        verify: Union[bool, str] = True,
        timeout: Tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        limits: BodyLimits = BodyLimits(),
        cache_identity: Optional[str] = None,
    ) -> None:
        url = validate_base_url(url)
        parts = urlsplit(url)
        if parts.username is not None:
            if auth is None:
                auth = BasicAuth(unquote(parts.username), unquote(parts.password or ""))
            url = redact_url(url)
        self.url = url
        # What the frame cache keys this server's frames by: its URL, or a name for its content
        # when the URL is not stable (the sample server's port changes at every start).
        self.cache_identity = cache_identity or url
        self.auth = auth
        self.headers: Dict[str, str] = dict(headers or {})
        self.verify = verify
        self.timeout = timeout
        self.retry = retry
        self.limits = limits
        self.traits = ServerTraits()  # what is learnt about this server (routes, Range): server_traits.py
        self._sleep = sleep
        self._local = threading.local()
        if verify is False:
            logger.warning("TLS certificate verification is OFF for %s", self.url)

    def __repr__(self) -> str:
        header_names = ", ".join(sorted(self.headers))
        return f"DicomwebServer({self.url!r}, auth={self.auth!r}, headers=[{header_names}])"

    # -- requests -------------------------------------------------------------------------------
    def connection(self) -> requests.Session:
        """This thread's keep-alive HTTP connection (a requests.Session: not shared across threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = requests.Session()
            connection.auth = self.auth
            connection.headers.update(self.headers)
            connection.verify = self.verify
            connection.trust_env = False  # the environment is read once per origin: `_environment`
            window = getattr(self._local, "receive_window", None)
            if window is not None:
                for scheme in ("http://", "https://"):
                    connection.mount(scheme, _BoundedWindow(window))
            self._local.connection = connection
            self._local.environment = {}
        return connection

    def set_receive_window(self, size: Optional[int]) -> None:
        """This thread's connections get a TCP receive buffer of `size` bytes (None: the system's,
        autotuned). A bulk answer on a small window cannot fill the link's queue ahead of the small
        answers other connections wait for (frames beside previews, previews/rendered_link.py)."""
        if getattr(self._local, "receive_window", None) != size:
            self.close()
            self._local.receive_window = size

    def _environment(self, url: str) -> Tuple[Dict[str, Any], Any]:
        """What requests takes from the environment for this URL's origin (proxies and NO_PROXY,
        REQUESTS_CA_BUNDLE when `verify` is True, ~/.netrc without other auth), read once per
        origin and thread: requests reads it again on every request (~0.8 ms each, measured)."""
        found = self._local.environment.get(_origin(url))
        if found is None:
            settings = requests.Session().merge_environment_settings(url, {}, True, self.verify, None)
            netrc = requests.utils.get_netrc_auth(url) if self.auth is None else None
            found = self._local.environment[_origin(url)] = (settings, netrc)
        return found

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def url_for(self, path: str, params: Optional[Params] = None) -> str:
        query = encode_query(params) if params else ""
        return f"{self.url}/{path.lstrip('/')}" + (f"?{query}" if query else "")

    def get(self, path: str, params: Optional[Params] = None, accept: str = DICOM_JSON,
            headers: Optional[Mapping[str, str]] = None, stream: bool = False,
            retry: Optional[RetryPolicy] = None, max_bytes: Optional[int] = None) -> requests.Response:
        """GET with retries (`retry` overrides the server's policy for this call); returns a 2xx
        response or raises a `DicomwebError` subclass. Unless `stream`, the body is read here
        (at most `max_bytes`, default the JSON limit), so an interrupted body is retried too."""
        retry = retry or self.retry
        url = self.url_for(path, params)
        request_headers = {"Accept": accept}
        request_headers.update(headers or {})
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(url, request_headers)
            except requests.exceptions.SSLError as error:
                raise ServerUnreachable(f"GET {url}: TLS verification failed ({type(error).__name__})", url) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                self._wait_or_raise(url, attempt, retry, error)
                continue
            status = response.status_code
            if status == 401 and isinstance(self.auth, TokenProvider) and not refreshed:
                refreshed = True
                response.close()
                logger.info("GET %s: 401, asking the token provider for a new token", url)
                self.auth.refresh()
                continue
            if status in (429, 503):
                self.traits.note_push_back(self)  # the engine asks for less at once (engine/concurrency.py)
            if status in retry.statuses and attempt < retry.attempts:
                wait = retry.wait(attempt, response)
                logger.info("GET %s: HTTP %d, retrying in %.1f s", url, status, wait)
                response.close()
                self._sleep(wait)
                continue
            response = _checked(response, url)
            if stream:
                return response
            try:
                read_body(response, url, self.limits.json_bytes if max_bytes is None else max_bytes,
                          self.limits.seconds)
            except BodyInterrupted as error:
                self._wait_or_raise(url, attempt, retry, error)
                continue
            return response

    def _wait_or_raise(self, url: str, attempt: int, retry: RetryPolicy, error: Exception) -> None:
        """After a failed try: back off before the next, or give up with a message naming the cause."""
        if attempt >= retry.attempts:
            if isinstance(error, BodyInterrupted):
                message = f"GET {url}: the answer broke off ({error}), {retry.attempts} times"
            else:
                message = _unreachable_message(url, error, self.timeout)
            raise ServerUnreachable(message, url) from None
        wait = retry.wait(attempt)
        logger.info("GET %s: %s, retrying in %.1f s", url, error if isinstance(error, BodyInterrupted)
                    else f"{type(error).__name__} ({error})", wait)
        self._sleep(wait)

    def get_json(self, path: str, params: Optional[Params] = None) -> List[Dict[str, Any]]:
        """A DICOM JSON array (an object is wrapped: some servers send one dataset bare)."""
        response = self.get(path, params)
        url = self.url_for(path, params)
        if response.status_code == 204 or not response.content:
            return []
        kind = response.headers.get("Content-Type", "")
        if kind and "json" not in kind.split(";", 1)[0].lower():
            raise BadResponse(f"GET {url}: expected DICOM JSON, the answer is {kind}", url, response.status_code)
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no Content-Type")
            raise BadResponse(f"GET {url}: the answer is not JSON ({kind})", url, response.status_code) from None
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise BadResponse(f"GET {url}: expected a JSON array of DICOM datasets", url, response.status_code)
        return body

    def _send(self, url: str, headers: Dict[str, str]) -> requests.Response:
        """One request with its redirects followed; credentials go to this server's origin only."""
        connection = self.connection()
        credentials = True
        for _ in range(MAX_REDIRECTS + 1):
            settings, netrc = self._environment(url)
            auth = netrc
            if not credentials:
                headers = {**headers, **{name: None for name in self.headers}}  # None drops a connection header
                auth = _no_auth
            prepared = connection.prepare_request(requests.Request("GET", url, headers=headers, auth=auth))
            response = connection.send(prepared, timeout=self.timeout, stream=True, verify=settings["verify"],
                                       proxies=settings["proxies"], cert=settings["cert"], allow_redirects=False)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECTS or not location:
                return response
            response.close()
            target = urljoin(url, location)
            if credentials and _origin(target) != _origin(url):
                credentials = False
                logger.info("GET %s: redirected to %s, another origin: sent without credentials",
                            url, redact_url(target))
            url = target
        raise BadResponse(f"GET {url}: more than {MAX_REDIRECTS} redirects", url, response.status_code)

def same_origin(first: str, second: str) -> bool:
    """Same scheme, host and port (default ports filled in): where credentials may go."""
    return _origin(first) == _origin(second)


def _origin(url: str) -> Tuple[str, str, Optional[int]]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _checked(response: requests.Response, url: str) -> requests.Response:
    status = response.status_code
    if status < 400:
        return response
    reason = f"HTTP {status} {response.reason or ''}".strip()
    response.close()
    if status in (401, 403):
        raise AuthenticationFailed(f"GET {url}: authentication failed ({reason})", url, status)
    if status == 404:
        raise NotFound(f"GET {url}: not found ({reason})", url, status)
    raise BadResponse(f"GET {url}: {reason}", url, status)


def _unreachable_message(url: str, error: Exception, timeout: Tuple[float, float]) -> str:
    if isinstance(error, requests.exceptions.Timeout):
        return f"GET {url}: no answer within the timeout (connect {timeout[0]:g} s, read {timeout[1]:g} s)"
    if "Connection aborted" in str(error) or "reset by peer" in str(error):
        return f"GET {url}: the server closed the connection without a complete answer"
    host = urlsplit(url).netloc
    return f"GET {url}: cannot connect to {host} (is the server running and the URL right?)"


__all__ = ["DicomwebServer", "RetryPolicy", "encode_query", "retry_after_seconds", "DicomwebError"]
