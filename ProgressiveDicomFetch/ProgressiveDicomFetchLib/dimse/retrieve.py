"""C-GET at image level: a few SOPInstanceUIDs per request over an association that proposes the
series' storage SOP classes with us as SCP, each with every transfer syntax we decode (one context
per pair, so the peer sends what it stores instead of transcoding). Received datasets become
the same `FrameData` a WADO-RS frame request gives, so the volume writes them alike.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Sequence, Tuple

from .. import transfer_syntax as ts
from ..dicomweb.frames import FrameData
from ..pixels.codecs import can_decode
from .association import Link, Peer
from .errors import DimseFailed, PeerVanished

logger = logging.getLogger(__name__)

GET_MODEL = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve Information Model - GET
MOVE_MODEL = "1.2.840.10008.5.1.4.1.2.2.2"  # ... - MOVE (the fallback: the peer sends to our listener)
# Native little endian first; then what pixels/codecs.py decodes, proposed only when its codec is installed.
# Big endian and deflate are left out: the peer converts them to little endian for us.
STORAGE_SYNTAXES = (ts.EXPLICIT_VR_LITTLE_ENDIAN, ts.IMPLICIT_VR_LITTLE_ENDIAN, ts.RLE_LOSSLESS, ts.JPEG_BASELINE,
                    ts.JPEG_EXTENDED, ts.JPEG_LOSSLESS, ts.JPEG_LOSSLESS_SV1, ts.JPEG_LS_LOSSLESS,
                    ts.JPEG_LS_NEAR_LOSSLESS, ts.JPEG2000_LOSSLESS, ts.JPEG2000, ts.HTJ2K_LOSSLESS,
                    ts.HTJ2K_LOSSLESS_RPCL, ts.HTJ2K)
NATIVE_TYPE = "application/octet-stream"
MAX_CONTEXTS = 128


def open_get_link(peer: Peer, sop_classes: Sequence[str]) -> Link:
    """An association for C-GETs of instances of `sop_classes` (the SCP role asked for each)."""
    classes = sorted(set(sop_classes))
    syntaxes = decodable_syntaxes()
    per_class = max(2, min(len(syntaxes), (MAX_CONTEXTS - 1) // max(1, len(classes))))
    contexts: List[Tuple[str, Sequence[str]]] = [(GET_MODEL, [ts.EXPLICIT_VR_LITTLE_ENDIAN, ts.IMPLICIT_VR_LITTLE_ENDIAN])]
    contexts += [(uid, syntaxes[:per_class]) for uid in classes]
    link = peer.open(contexts, scp_roles=classes, signature=frozenset(classes))
    peer.require(link, GET_MODEL)
    for uid in classes:
        peer.require(link, uid, scp_role=True)
    return link


def decodable_syntaxes() -> List[str]:
    """STORAGE_SYNTAXES whose decoder is installed here: the peer converts the others (Orthanc does)
    to a proposed one, so a missing codec costs bytes, not the series."""
    return [uid for uid in STORAGE_SYNTAXES if can_decode(ts.family(uid))]


def open_move_link(peer: Peer) -> Link:
    """An association for C-MOVEs (the instances come to our listener on other associations)."""
    link = peer.open([(MOVE_MODEL, [ts.EXPLICIT_VR_LITTLE_ENDIAN, ts.IMPLICIT_VR_LITTLE_ENDIAN])],
                     signature=frozenset([MOVE_MODEL]))
    peer.require(link, MOVE_MODEL)
    return link


def image_query(study_uid: str, series_uid: str, sop_uids: Sequence[str]) -> Any:
    from pydicom.dataset import Dataset

    query = Dataset()
    query.QueryRetrieveLevel = "IMAGE"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    query.SOPInstanceUID = list(sop_uids) if len(sop_uids) > 1 else sop_uids[0]
    return query


def get_instances(peer: Peer, link: Link, study_uid: str, series_uid: str, sop_uids: Sequence[str],
                  listener: Any = None) -> Dict[str, Tuple[Any, str]]:
    """SOPInstanceUID -> (dataset, transfer syntax) for each asked instance, by C-GET, or by C-MOVE
    to `listener` (a StoreListener); DimseFailed names the instances the peer did not send."""
    query = image_query(study_uid, series_uid, sop_uids)
    link.received.clear()
    final = None
    verb = "C-GET" if listener is None else "C-MOVE"
    what = f"{verb} of {len(sop_uids)} instance(s) of series {series_uid}"
    send = (lambda: link.assoc.send_c_get(query, GET_MODEL)) if listener is None else \
        (lambda: link.assoc.send_c_move(query, listener.ae_title, MOVE_MODEL))
    try:
        for status, _ in peer.responses(link, send, what):
            if status not in (0xFF00, 0xFF01):
                final = status
    except PeerVanished as error:
        if listener is None:
            raise
        raise PeerVanished(f"{error}; a peer ends a C-MOVE from an AE title it does not know (Orthanc does): add "
                           f"{listener.ae_title}@<this host>:{listener.port} to the peer's modalities", peer.url) from None
    if listener is None:
        got = {str(ds.SOPInstanceUID): (ds, syntax) for ds, syntax in link.received}
    else:
        got = listener.take(sop_uids, peer.timeout)
    link.received.clear()
    if listener is not None and final == 0xA801:
        raise DimseFailed(f"{peer.url} does not know the C-MOVE destination {listener.ae_title!r}: add it to the "
                          f"peer's modalities as {listener.ae_title}@<this host>:{listener.port}", peer.url, final)
    missing = [uid for uid in sop_uids if uid not in got]
    if missing:
        hint = (" (sub-operations failed: the peer could not send them, e.g. it cannot read or convert their "
                "stored transfer syntax, as Orthanc 1.10 with HTJ2K)" if final in (0xA702, 0xB000) else "")
        raise DimseFailed(f"{peer.url}: {what} ended with status 0x{final or 0:04X} without "
                          f"{len(missing)} instance(s), e.g. {missing[0]}{hint}", peer.url, final)
    return got


def frames_of(dataset: Any, syntax: str, frame_numbers: Sequence[int]) -> List[FrameData]:
    """The asked frames (1-based) of a received dataset, as a frame request would have brought them."""
    if "PixelData" not in dataset:
        raise DimseFailed(f"instance {dataset.get('SOPInstanceUID', '?')} came without PixelData")
    data = dataset.PixelData
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    wrong = [n for n in frame_numbers if not 1 <= n <= count]
    if wrong:
        raise DimseFailed(f"instance {dataset.SOPInstanceUID} has {count} frames, not frame {wrong[0]}")
    if syntax in ts.NATIVE:
        size = int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1)) * \
            int(dataset.BitsAllocated) // 8
        label = ts.EXPLICIT_VR_LITTLE_ENDIAN if syntax != ts.EXPLICIT_VR_BIG_ENDIAN else syntax
        return [FrameData(n, bytes(data[(n - 1) * size:n * size]), label, NATIVE_TYPE) for n in frame_numbers]
    fragments = _encapsulated_frames(data, count)
    return [FrameData(n, fragments[n - 1], syntax, NATIVE_TYPE) for n in frame_numbers]


def _encapsulated_frames(data: bytes, count: int) -> List[bytes]:
    try:  # pydicom 3
        from pydicom.encaps import generate_frames
        return list(generate_frames(data, number_of_frames=count))
    except ImportError:  # pydicom 2.4
        from pydicom.encaps import generate_pixel_data_frame
        return list(generate_pixel_data_frame(data, count))
