"""DICOMweb client layer: one server object, QIDO search, series metadata, errors, auth."""
from __future__ import annotations

from .auth import BasicAuth, BearerToken, HeaderAuth, TokenProvider, make_auth
from .errors import AuthenticationFailed, BadResponse, DicomwebError, NotFound, ServerUnreachable
from .filters import Filter, make_filter, parse_filters
from .metadata import InstanceMetadata, series_metadata
from .records import InstanceRecord, SeriesRecord, StudyRecord, sort_records
from .search import SearchResult, search_instances, search_series, search_studies
from .server import DicomwebServer, RetryPolicy
from .server_check import ServerCheck, check_server
from .server_traits import FrameRoute, ServerTraits

__all__ = [
    "AuthenticationFailed", "BadResponse", "BasicAuth", "BearerToken", "DicomwebError", "DicomwebServer",
    "Filter", "HeaderAuth", "InstanceMetadata", "InstanceRecord", "NotFound", "RetryPolicy", "SearchResult",
    "SeriesRecord", "ServerUnreachable", "StudyRecord", "TokenProvider", "make_auth", "make_filter",
    "parse_filters", "search_instances", "search_series", "search_studies", "series_metadata", "sort_records",
    "FrameRoute", "ServerCheck", "ServerTraits", "check_server",
]

from .frames import (  # noqa: E402  (appended: WADO-RS frames)
    FrameData, fetch_frames, frame_accept, negotiate, parse_multipart,
)

__all__ += ["FrameData", "fetch_frames", "frame_accept", "negotiate", "parse_multipart"]
