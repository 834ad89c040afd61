"""Errors a user can act on: what failed, where (URL without credentials), and the HTTP status."""
from __future__ import annotations

from typing import Optional


class DicomwebError(Exception):
    """Base class: every DICOMweb failure names the URL (credentials stripped) and the status if any."""

    def __init__(self, message: str, url: str = "", status: Optional[int] = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class ServerUnreachable(DicomwebError):
    """No HTTP answer: DNS, refused connection, TLS failure, or a timeout."""


class AuthenticationFailed(DicomwebError):
    """HTTP 401/403: the server refused the credentials (or wanted some)."""


class NotFound(DicomwebError):
    """HTTP 404: unknown study, series or instance (or a wrong base URL)."""


class BadResponse(DicomwebError):
    """The server answered, but not with what DICOMweb promises (status, media type, body)."""
