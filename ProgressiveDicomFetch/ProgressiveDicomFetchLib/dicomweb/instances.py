"""WADO-RS whole instances and bulk data: the server's own Part-10 file, byte for byte.

`GET .../instances/{sop}` with `Accept: multipart/related; type="application/dicom";
transfer-syntax=*` asks for the stored file unchanged. What servers answer (measured, see
Testing/test_part10_files.py): Orthanc 1.10 sends its stored file for `*` (without `*` it tries
to transcode and answers 500 for HTJ2K and J2K; a bare `application/dicom` gets 400); a static
tree (nginx) has no instance resources and answers 404. The outcome is remembered per server so
one refusal is enough (ServerTraits). Kept separate from the frames so the engine can fetch whole instances too.
"""
from __future__ import annotations

import io
import logging
from typing import Optional, Tuple
from urllib.parse import urljoin

import pydicom

from .errors import BadResponse, NotFound
from .filters import check_single_uid
from .frames import PIXEL_HEADERS, REFUSED_STATUSES, body_parts, probe_policy, split_media_type
from .server import DicomwebServer, same_origin
from .server_traits import ServerTraits

logger = logging.getLogger(__name__)

INSTANCE_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
BULK_ACCEPT = 'multipart/related; type="application/octet-stream"'
PREAMBLE = 128


def instance_path(study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
    for keyword, uid in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid),
                         ("SOPInstanceUID", sop_instance_uid)):
        check_single_uid(keyword, uid)
    return f"studies/{study_uid}/series/{series_uid}/instances/{sop_instance_uid}"


def fetch_instance(server: DicomwebServer, study_uid: str, series_uid: str, sop_instance_uid: str,
                   traits: Optional[ServerTraits] = None) -> Optional[bytes]:
    """The stored Part-10 file of one instance, exactly as the server keeps it; None when the
    server does not offer instances (learnt once in `traits`, default the server's own).

    BadResponse when the answer is not one Part-10 file of that very instance.
    """
    traits = server.traits if traits is None else traits
    if traits.instances(server) is False:
        return None
    path = instance_path(study_uid, series_uid, sop_instance_uid)
    where = server.url_for(path)
    try:
        response = server.get(path, accept=INSTANCE_ACCEPT, headers=PIXEL_HEADERS, max_bytes=server.limits.frame_bytes,
                              retry=None if traits.instances(server) else probe_policy(server))
    except (NotFound, BadResponse) as error:  # a static tree has no instance resources: 404
        # Not known to work (another thread may have just found it refused): a refusal means "not offered".
        if traits.instances(server) is not True and (isinstance(error, NotFound) or error.status in REFUSED_STATUSES):
            traits.learn_instances(server, False)
            return None
        raise
    parts = body_parts(response.content, response.headers.get("Content-Type", ""), where)
    if len(parts) != 1:
        raise BadResponse(f"{where}: {len(parts)} parts in the answer, one instance asked for", where)
    media, _ = split_media_type(parts[0].content_type)
    if media not in ("application/dicom", ""):
        if traits.instances(server) is not True:
            traits.learn_instances(server, False)
            return None
        raise BadResponse(f"{where}: the answer is {media}, not application/dicom", where)
    data = parts[0].data
    check_part10(data, study_uid, series_uid, sop_instance_uid, where)
    traits.learn_instances(server, True)
    return data


def check_part10(data: bytes, study_uid: str, series_uid: str, sop_instance_uid: str, where: str) -> None:
    """BadResponse unless `data` is a Part-10 file (preamble, `DICM`) of exactly this instance."""
    if data[PREAMBLE:PREAMBLE + 4] != b"DICM":
        raise BadResponse(f"{where}: the answer is not a DICOM Part-10 file (no DICM prefix)", where)
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
    except Exception as error:  # pydicom raises several types for broken files
        raise BadResponse(f"{where}: the answer is not a readable DICOM file ({error})", where) from None
    found = (str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")),
             str(ds.get("SOPInstanceUID", "")))
    if found != (study_uid, series_uid, sop_instance_uid):
        raise BadResponse(f"{where}: the file sent is instance {found[2] or '?'} of series {found[1] or '?'}, "
                          "not the one asked for", where)


def bulk_data_path(server: DicomwebServer, uri: str, series_path: str) -> str:
    """The path below the service root of a BulkDataURI: relative ones are relative to the series
    (static trees), absolute ones must lie below this server's root (ValueError otherwise: bulk
    data is never fetched from another origin, so no credential goes there)."""
    base = server.url_for(series_path) + "/"
    target = urljoin(base, uri)
    root = server.url + "/"
    if not same_origin(target, root) or not target.startswith(root):
        raise ValueError(f"BulkDataURI {uri} is not on this server ({server.url})")
    return target[len(root):]


def fetch_bulk_data(server: DicomwebServer, uri: str, series_path: str) -> Tuple[bytes, str]:
    """The value of one bulk data element (a one-part multipart answer or a bare body) and where it came from."""
    path = bulk_data_path(server, uri, series_path)
    where = server.url_for(path)
    response = server.get(path, accept=BULK_ACCEPT, headers=PIXEL_HEADERS, max_bytes=server.limits.frame_bytes)
    parts = body_parts(response.content, response.headers.get("Content-Type", ""), where)
    if len(parts) != 1:
        raise BadResponse(f"{where}: {len(parts)} parts in a bulk data answer, one expected", where)
    return parts[0].data, where
