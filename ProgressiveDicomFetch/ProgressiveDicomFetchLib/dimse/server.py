"""A DIMSE peer as the engine's transport: series metadata by image-level C-FIND (geometry before
pixels), frames by image-level C-GET, one association per worker thread (so the engine's
connection setting is the number of associations), A-ABORT of all of them on cancel.

Geometry: the image-level C-FIND asks for every attribute the geometry layer reads. Peers that
answer from the files (Orthanc with StorageAccessOnFind) return them for single-frame images;
instances whose answer lacks them (no Rows; multi-frame objects, whose per-frame groups no C-FIND
returns; palette colour images, whose LUT data it does not return either) are retrieved first:
their headers give the geometry and their frames are held for the slices (docs/dimse.md says
which peers do what).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..dicomweb.filters import check_single_uid
from ..dicomweb.frames import FrameData
from ..dicomweb.errors import DicomwebError
from ..dicomweb.metadata import InstanceMetadata, parse_instance
from ..dicomweb.server_check import ServerCheck
from .address import DEFAULT_CALLING_AET, DimseAddress
from .association import Link, Peer
from .errors import DimseFailed, PeerVanished
from .find import EXPLICIT_LE, IMPLICIT_LE, find_datasets, identifier
from .listener import StoreListener
from .retrieve import decodable_syntaxes, frames_of, get_instances, open_get_link, open_move_link

logger = logging.getLogger(__name__)

PROTOCOL = "dimse"
VERIFICATION = "1.2.840.10008.1.1"
# Everything geometry/ and pixels/ read from an instance (PerFrameFunctionalGroupsSequence is not
# asked: Orthanc fails the whole C-FIND for it; multi-frame objects are retrieved instead).
GEOMETRY_KEYS = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber", "Modality", "ImageType", "SeriesNumber",
                 "SeriesDescription", "Rows", "Columns", "NumberOfFrames", "ImagePositionPatient",
                 "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices",
                 "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
                 "PhotometricInterpretation", "PlanarConfiguration", "RescaleSlope", "RescaleIntercept",
                 "PixelPaddingValue", "AcquisitionNumber", "AcquisitionTime", "TemporalPositionIdentifier",
                 "TriggerTime", "EchoNumbers", "DiffusionBValue", "DoseGridScaling", "FrameOfReferenceUID")
ANSWER_ONLY = ("QueryRetrieveLevel", "RetrieveAETitle", "SpecificCharacterSet")


class DimseServer:
    """What the engine, the command line and the Logic hold for a DIMSE peer (thread-safe)."""

    protocol = PROTOCOL
    previews = False  # no in-plane previews over DIMSE: every stage writes whole frames

    def __init__(self, address: Any, calling_aet: str = DEFAULT_CALLING_AET, timeout: float = 30.0,
                 connect_timeout: float = 10.0, move_port: Optional[int] = None) -> None:
        """`move_port`: retrieve by C-MOVE to our own listener on that port (peers without C-GET)."""
        if not isinstance(address, DimseAddress):
            address = DimseAddress.parse(str(address), calling_aet)
        self.address = address
        self.peer = Peer(address, timeout, connect_timeout)
        self.listener = None if move_port is None else StoreListener(address.calling_aet, move_port)
        self._local = threading.local()
        self._held: Dict[str, Dict[int, FrameData]] = {}  # frames retrieved before their turn
        self._held_lock = threading.Lock()
        self._aborted = False  # since abort(): no new C-GET, associations end by A-ABORT (until new metadata)

    @property
    def url(self) -> str:
        return self.address.url

    def __repr__(self) -> str:
        return f"DimseServer({self.url!r}, calling_aet={self.address.calling_aet!r})"

    def echo(self) -> float:
        """C-ECHO (verification) on its own association: the seconds it took; errors say what failed."""
        started = time.monotonic()
        link = self.peer.open([(VERIFICATION, [EXPLICIT_LE, IMPLICIT_LE])])
        try:
            self.peer.require(link, VERIFICATION)
            for status, _ in self.peer.responses(link, lambda: [(link.assoc.send_c_echo(), None)], "C-ECHO"):
                if status != 0x0000:
                    raise DimseFailed(f"{self.url} answered C-ECHO with status 0x{status:04X}", self.url, status)
        except BaseException:
            self.peer.abort(link)
            raise
        self.peer.release(link)
        return time.monotonic() - started

    def check(self) -> ServerCheck:
        """The panel's "Test connection" for a peer: a C-ECHO; the message says what failed."""
        try:
            seconds = self.echo()
        except DicomwebError as error:  # every DIMSE error derives from it (errors.py)
            return ServerCheck(self.url, False, str(error))
        return ServerCheck(self.url, True, f"{self.url} answers C-ECHO ({seconds * 1000:.0f} ms)", seconds=seconds)

    # -- the engine's transport ----------------------------------------------------------------
    def series_metadata(self, study_uid: str, series_uid: str) -> List[InstanceMetadata]:
        """The series' instances with their geometry (image-level C-FIND; retrieval where it lacks)."""
        check_single_uid("StudyInstanceUID", study_uid)
        check_single_uid("SeriesInstanceUID", series_uid)
        self._aborted = False  # a new load begins
        started = time.monotonic()
        query = identifier("IMAGE", [], {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid},
                           GEOMETRY_KEYS)
        answers = [_clean(answer) for answer in find_datasets(self.peer, query)]
        if not answers:
            raise DimseFailed(f"{self.url}: series {series_uid} of study {study_uid} has no instances", self.url)
        lacking = [a for a in answers if "Rows" not in a or int(a.get("NumberOfFrames", 1) or 1) > 1
                   or a.get("PhotometricInterpretation") == "PALETTE COLOR"]  # its LUT data comes with the file
        if lacking:
            logger.info("series %s: %d of %d instances retrieved for their geometry (the C-FIND answer lacks it)",
                        series_uid, len(lacking), len(answers))
            headers = self._retrieve_headers(study_uid, series_uid, lacking)
            answers = [headers.get(str(a.SOPInstanceUID), a) for a in answers]
        records = [parse_instance(answer.to_json_dict(), self.url) for answer in answers]
        logger.info("metadata of series %s: %d instances by C-FIND in %.2f s", series_uid, len(records),
                    time.monotonic() - started)
        return records

    def fetch_frames(self, study_uid: str, series_uid: str, wanted: Sequence[Tuple[str, int]],
                     sop_classes: Sequence[str]) -> List[FrameData]:
        """Frames given as (SOPInstanceUID, frame number): held ones first, the rest by one C-GET of
        their instances on this thread's association (other frames of those instances are held)."""
        found: Dict[Tuple[str, int], FrameData] = {}
        with self._held_lock:
            for sop, number in wanted:
                frame = self._held.get(sop, {}).pop(number, None)
                if frame is not None:
                    found[(sop, number)] = frame
                if sop in self._held and not self._held[sop]:
                    del self._held[sop]
        missing = list(dict.fromkeys(sop for sop, number in wanted if (sop, number) not in found))
        if missing and self._aborted:
            raise self._cancelled()
        if missing:
            link = self._link([uid for uid in sop_classes if uid])
            try:
                received = get_instances(self.peer, link, study_uid, series_uid, missing, self.listener)
            except BaseException:
                self._drop_link()
                raise
            for sop in missing:
                dataset, syntax = received[sop]
                count = int(dataset.get("NumberOfFrames", 1) or 1)
                frames = {f.frame_number: f for f in frames_of(dataset, syntax, range(1, count + 1))}
                for number in [n for s, n in wanted if s == sop]:
                    if number not in frames:
                        raise DimseFailed(f"instance {sop} has {count} frames, not frame {number}", self.url)
                    found[(sop, number)] = frames.pop(number)
                if frames:
                    with self._held_lock:
                        self._held.setdefault(sop, {}).update(frames)
        return [found[key] for key in wanted]

    def close(self) -> None:
        """Release this thread's association (workers call it when they end); after abort(), abort it."""
        self._drop_link(abort=self._aborted)

    def shutdown(self) -> None:
        """Stop the C-MOVE listener, if any (associations end with their threads or by abort())."""
        if self.listener is not None:
            self.listener.stop()

    def abort(self) -> int:
        """A-ABORT every open association (cancel): requests in flight end at once with an error, and
        no new C-GET starts until the next load asks for metadata."""
        self._aborted = True
        return self.peer.abort_all()

    # -- internals ----------------------------------------------------------------------------
    def _cancelled(self) -> PeerVanished:
        return PeerVanished(f"{self.url}: the load was cancelled (associations aborted)", self.url)

    def _link(self, sop_classes: Sequence[str]) -> Link:
        """This thread's C-GET association, reopened when it does not cover `sop_classes`."""
        link: Optional[Link] = getattr(self._local, "link", None)
        if link is not None and link.ok() and (self.listener is not None or set(sop_classes) <= link.signature):
            return link
        self._drop_link(abort=False)
        wanted = set(sop_classes) | (link.signature if link is not None else set())
        self._local.link = self._open_retrieve(sorted(wanted))
        return self._local.link

    def _open_retrieve(self, sop_classes: Sequence[str]) -> Link:
        """A C-GET association for these SOP classes, or a C-MOVE one (its listener started)."""
        if self.listener is None:
            link = open_get_link(self.peer, sop_classes)
        else:
            self.listener.start(decodable_syntaxes())
            link = open_move_link(self.peer)
        if self._aborted:  # abort() ran while it opened: abort_all could not see it yet (it is live now)
            self.peer.abort(link)
            raise self._cancelled()
        return link

    def _drop_link(self, abort: bool = True) -> None:
        link: Optional[Link] = getattr(self._local, "link", None)
        self._local.link = None
        if link is not None:
            (self.peer.abort if abort else self.peer.release)(link)

    def _retrieve_headers(self, study_uid: str, series_uid: str, answers: List[Any]) -> Dict[str, Any]:
        """Retrieve instances whose geometry the C-FIND did not give; their frames are held."""
        link = self._open_retrieve(sorted({str(a.SOPClassUID) for a in answers}))
        headers: Dict[str, Any] = {}
        try:
            for answer in answers:
                sop = str(answer.SOPInstanceUID)
                dataset, syntax = get_instances(self.peer, link, study_uid, series_uid, [sop], self.listener)[sop]
                count = int(dataset.get("NumberOfFrames", 1) or 1)
                with self._held_lock:
                    self._held[sop] = {f.frame_number: f for f in frames_of(dataset, syntax, range(1, count + 1))}
                del dataset.PixelData
                headers[sop] = dataset
        except BaseException:
            self.peer.abort(link)
            raise
        self.peer.release(link)
        return headers


def _clean(answer: Any) -> Any:
    """A C-FIND answer as instance metadata: empty return keys and query-only elements removed."""
    for element in list(answer):
        if element.keyword in ANSWER_ONLY or element.is_empty:
            del answer[element.tag]
    return answer

