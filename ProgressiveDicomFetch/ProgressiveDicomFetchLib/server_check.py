"""Answers "can I reach this DICOMweb server?" with a message a user can act on.

The panel's "Test connection" button and scripts use it before a search. It sends one small
QIDO study query; it never puts credentials into its messages.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

import requests

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"


@dataclass(frozen=True)
class ServerCheck:
    """Outcome of a connection check; `message` is meant for the user."""

    url: str
    ok: bool
    message: str
    status: Optional[int] = None
    studies_seen: Optional[int] = None
    seconds: float = 0.0


def redact_url(url: str) -> str:
    """The URL without user:password, for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def validate_base_url(url: str) -> str:
    """The DICOMweb base URL without a trailing slash; ValueError naming what is wrong otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("DICOMweb URL is empty: expected something like http://host:8042/dicom-web")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"DICOMweb URL {redact_url(url)!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"DICOMweb URL {redact_url(url)!r} has no host name")
    if parts.query or parts.fragment:
        raise ValueError(f"DICOMweb URL {redact_url(url)!r} must not contain a query or fragment")
    return url.rstrip("/")


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
    request_headers = {"Accept": DICOM_JSON}
    request_headers.update(headers or {})
    try:
        response = requests.get(
            f"{base}/studies", params={"limit": "1"}, headers=request_headers, auth=auth, timeout=timeout, verify=verify
        )
    except requests.exceptions.SSLError as error:
        return _result(shown, started, False, f"TLS verification failed for {shown}: {type(error).__name__}")
    except requests.exceptions.ConnectionError:
        return _result(shown, started, False, f"Cannot connect to {shown}: is the server running and the URL right?")
    except requests.exceptions.Timeout:
        return _result(shown, started, False, f"{shown} did not answer within {timeout[0]:g}+{timeout[1]:g} s")
    status = response.status_code
    if status in (401, 403):
        return _result(shown, started, False, f"{shown} refused the credentials (HTTP {status})", status)
    if status == 204:
        return _result(shown, started, True, f"Connected to {shown}: no studies", status, 0)
    if status != 200:
        return _result(shown, started, False, f"{shown}/studies answered HTTP {status} {response.reason}", status)
    try:
        studies = response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no Content-Type")
        return _result(shown, started, False, f"{shown}/studies did not answer DICOM JSON ({kind})", status)
    if not isinstance(studies, list):
        return _result(shown, started, False, f"{shown}/studies answered JSON that is not a list of studies", status)
    return _result(shown, started, True, f"Connected to {shown}", status, len(studies))


def _result(url: str, started: float, ok: bool, message: str, status: Optional[int] = None,
            studies: Optional[int] = None) -> ServerCheck:
    seconds = time.monotonic() - started
    (logger.info if ok else logger.warning)("%s (%.2f s)", message, seconds)
    return ServerCheck(url=url, ok=ok, message=message, status=status, studies_seen=studies, seconds=seconds)

