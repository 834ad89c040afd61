"""Answers "can I reach this DICOMweb server?" with a message a user can act on.

The panel's "Test connection" button and scripts use it before a search. It sends one small
QIDO study query through `DicomwebServer.get` (no retries: a check answers at once); it never
puts credentials into its messages.
"""
from __future__ import annotations

import http
import logging
import time
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import requests

from .errors import AuthenticationFailed, DicomwebError, ServerUnreachable
from .server import DicomwebServer, RetryPolicy
from .urls import redact_url, validate_base_url

logger = logging.getLogger(__name__)

ONE_TRY = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class ServerCheck:
    """Outcome of a connection check; `message` is meant for the user."""

    url: str
    ok: bool
    message: str
    status: Optional[int] = None
    studies_seen: Optional[int] = None
    seconds: float = 0.0


def check_server(
    url: str,
    auth: Optional[Any] = None,
    headers: Optional[dict] = None,
    timeout: Tuple[float, float] = (5.0, 20.0),
    verify: Any = True,
) -> ServerCheck:
    """Query `/studies?limit=1` and say whether the server answered like a DICOMweb server."""
    base = validate_base_url(url)
    shown = redact_url(base)
    started = time.monotonic()
    server = DicomwebServer(base, auth=auth, headers=headers, verify=verify, timeout=timeout, retry=ONE_TRY)
    try:
        response = server.get("studies", params={"limit": "1"})
    except ServerUnreachable as error:
        cause = error.__context__  # the requests exception the server turned into this error
        if isinstance(cause, requests.exceptions.SSLError):
            return _result(shown, started, False, f"TLS verification failed for {shown}: {type(cause).__name__}")
        if isinstance(cause, requests.exceptions.Timeout):
            return _result(shown, started, False, f"{shown} did not answer within {timeout[0]:g}+{timeout[1]:g} s")
        return _result(shown, started, False, f"Cannot connect to {shown}: is the server running and the URL right?")
    except AuthenticationFailed as error:
        return _result(shown, started, False, f"{shown} refused the credentials (HTTP {error.status})", error.status)
    except DicomwebError as error:
        status = error.status
        reason = _reason(status) if status is not None else str(error)
        return _result(shown, started, False, f"{shown}/studies answered {reason}", status)
    finally:
        server.close()
    status = response.status_code
    if status == 204:
        return _result(shown, started, True, f"Connected to {shown}: no studies", status, 0)
    if status != 200:
        return _result(shown, started, False, f"{shown}/studies answered {_reason(status)}", status)
    try:
        studies = response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no Content-Type")
        return _result(shown, started, False, f"{shown}/studies did not answer DICOM JSON ({kind})", status)
    if not isinstance(studies, list):
        return _result(shown, started, False, f"{shown}/studies answered JSON that is not a list of studies", status)
    return _result(shown, started, True, f"Connected to {shown}", status, len(studies))


def _reason(status: int) -> str:
    try:
        return f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _result(url: str, started: float, ok: bool, message: str, status: Optional[int] = None,
            studies: Optional[int] = None) -> ServerCheck:
    seconds = time.monotonic() - started
    (logger.info if ok else logger.warning)("%s (%.2f s)", message, seconds)
    return ServerCheck(url=url, ok=ok, message=message, status=status, studies_seen=studies, seconds=seconds)

