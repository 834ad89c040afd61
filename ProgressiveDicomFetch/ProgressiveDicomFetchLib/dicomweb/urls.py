"""The DICOMweb base URL: checked once where a server is made, and shown without credentials."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


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
