"""One bulk data element (e.g. a palette's LUT data, which Orthanc gives as a BulkDataURI) by its URI."""
from __future__ import annotations

from .. import transfer_syntax as ts
from .errors import BadResponse
from .frames import PIXEL_HEADERS, body_parts
from .server import DicomwebServer

MAX_BULK_BYTES = 16 << 20  # LUTs and similar: far below this


def fetch_bulk_data(server: DicomwebServer, uri: str) -> bytes:
    """The element's value bytes; `uri` is absolute on this server or relative to its root."""
    if "://" in uri:
        if not uri.startswith(server.url + "/"):
            raise ValueError(f"BulkDataURI {uri} is not on this server")
        uri = uri[len(server.url) + 1:]
    response = server.get(uri, accept=f'multipart/related; type="{ts.OCTET_STREAM}"', headers=PIXEL_HEADERS,
                          max_bytes=MAX_BULK_BYTES)
    where = server.url_for(uri)
    parts = body_parts(response.content, response.headers.get("Content-Type", ""), where)
    if len(parts) != 1:
        raise BadResponse(f"{where}: {len(parts)} parts for one bulk data element", where, response.status_code)
    return parts[0].data
