"""Part-10 files for every instance of a series: `DIR/<study>/<series>/<sop>.dcm` (docs/dicom-files.md).

Per instance, the server's own file when it offers whole instances (byte for byte), otherwise a
file rebuilt from the metadata and the stored frames (output/part10_rebuild.py); frames for a rebuild
come from the frame cache when it holds them in the stored encoding, else from the server.
Files are written atomically; one that exists is complete and is not fetched again (resume);
stale temp files of a killed run are removed. UIDs are checked (digits and dots) before they
become path components, so nothing lands outside DIR.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .. import transfer_syntax as ts
from ..cache import FrameCache, FrameKey
from ..dicomweb.errors import DicomwebError
from ..dicomweb.frames import ANY_SYNTAX, FrameData, fetch_frames
from ..dicomweb.instances import fetch_bulk_data, fetch_instance
from ..dicomweb.server import DicomwebServer
from ..files import PathLike, atomic_write, remove_stale_temps
from ..output.nrrd_writer import validate_uid
from ..output.part10_rebuild import RebuildInput, add_pixel_data, encode_part10, metadata_dataset, native_frame_size
from ..pixels.identify import sniff

logger = logging.getLogger(__name__)

SOURCES = ("auto", "rebuild")  # auto: the server's file where offered; rebuild: always rebuild


@dataclass
class Part10Report:
    """What writing one series did; `network_bytes` counts instance, frame and bulk data bodies."""

    series_uid: str
    instances: int = 0
    written: int = 0
    already_there: int = 0
    from_server: int = 0
    rebuilt: int = 0
    frames_from_cache: int = 0
    frames_released: int = 0  # cached frames dropped because the file now holds them
    bytes_written: int = 0
    network_bytes: int = 0
    seconds: float = 0.0
    failed: List[str] = field(default_factory=list)  # "SOP: reason"
    incomplete: List[str] = field(default_factory=list)  # "SOP: bulk element left out, why"

    def add(self, other: "Part10Report") -> None:
        """Count another (one instance's) report in this one."""
        for name in ("instances", "written", "already_there", "from_server", "rebuilt", "frames_from_cache",
                     "frames_released", "bytes_written", "network_bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed += other.failed
        self.incomplete += other.incomplete

    def summary(self) -> str:
        text = (f"DICOM files of series {self.series_uid}: {self.written} written ({self.from_server} as sent by "
                f"the server, {self.rebuilt} rebuilt), {self.already_there} already there, "
                f"{self.bytes_written / 1e6:.1f} MB, {self.network_bytes / 1e6:.1f} MB fetched, {self.seconds:.2f} s")
        return text + (f"; {len(self.failed)} FAILED" if self.failed else "")


def dicom_file_path(root: PathLike, study_uid: str, series_uid: str, sop_instance_uid: str) -> Path:
    """`root/<study>/<series>/<sop>.dcm`; ValueError when a UID is not digits and dots."""
    for uid in (study_uid, series_uid, sop_instance_uid):
        validate_uid(uid)
    return Path(root) / study_uid / series_uid / f"{sop_instance_uid}.dcm"


def _first(item: Dict[str, Any], tag: str) -> str:
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]) if isinstance(values, list) and values else ""


class Part10Writer:
    """Writes the files of series into `root` from one server (cache: the engine's frame cache)."""

    def __init__(self, root: PathLike, server: DicomwebServer, cache: Optional[FrameCache] = None,
                 source: str = "auto", release_cache: bool = False,
                 workers: int = 4) -> None:
        """`release_cache`: once an instance's file is on disk, its frames leave the cache (the
        file replaces them: Slicer loads such a series from its DICOM database). `workers`
        instances are fetched and written at a time (one request each: latency overlaps)."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        self.root = Path(root)
        self.server = server
        self.cache = cache
        self.source = source
        self.release_cache = release_cache and cache is not None

    def write_series(self, study_uid: str, series_uid: str,
                     metadata: Optional[Sequence[Dict[str, Any]]] = None) -> Part10Report:
        """Every instance of the series (metadata: its DICOM JSON items, fetched when not given)."""
        started = time.monotonic()
        report = Part10Report(series_uid)
        series_dir = dicom_file_path(self.root, study_uid, series_uid, "1").parent
        series_path = f"studies/{study_uid}/series/{series_uid}"
        items = list(metadata) if metadata is not None else self.server.get_json(f"{series_path}/metadata")
        series_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(series_dir)  # left by a killed run
        with ThreadPoolExecutor(self.workers, thread_name_prefix="part10") as pool:
            for outcome in pool.map(lambda item: self._write_one(item, study_uid, series_uid, series_path), items):
                report.add(outcome)
        report.seconds = time.monotonic() - started
        logger.info("%s", report.summary())
        return report

    def _write_one(self, item: Dict[str, Any], study_uid: str, series_uid: str, series_path: str) -> Part10Report:
        """One instance's file (a worker thread); its counts in a report of its own."""
        report = Part10Report(series_uid, instances=1)
        sop = _first(item, "00080018")
        try:
            self._check_item(item, study_uid, series_uid)
            target = dicom_file_path(self.root, study_uid, series_uid, sop)
            if target.exists():
                report.already_there += 1
            else:
                data = self._instance_bytes(item, study_uid, series_uid, sop, series_path, report)
                with atomic_write(target) as handle:
                    handle.write(data)
                report.written += 1
                report.bytes_written += len(data)
        except (DicomwebError, ValueError) as error:
            report.failed.append(f"{sop or '?'}: {error}")
            logger.error("instance %r of series %s: no file written: %s", sop, series_uid, error)
            return report
        if self.release_cache:
            report.frames_released += self._release(item, study_uid, series_uid, sop)
        return report

    def _release(self, item: Dict[str, Any], study_uid: str, series_uid: str, sop: str) -> int:
        """Drop the instance's frames from the cache (keys as the engine makes them)."""
        stored = RebuildInput.from_item(item).stored_syntax or ""
        count = int(_first(item, "00280008") or 1)
        keys = [FrameKey(self.server.url, study_uid, series_uid, sop, n, stored) for n in range(1, count + 1)]
        present = [key for key in keys if self.cache.entry_size(key) is not None]
        for key in present:
            self.cache.discard(key)
        return len(present)

    @staticmethod
    def _check_item(item: Dict[str, Any], study_uid: str, series_uid: str) -> None:
        sop = _first(item, "00080018")
        validate_uid(sop)
        for keyword, tag, expected in (("StudyInstanceUID", "0020000D", study_uid),
                                       ("SeriesInstanceUID", "0020000E", series_uid)):
            found = _first(item, tag)
            if found and found != expected:
                raise ValueError(f"its metadata says {keyword} {found!r}, not {expected}")

    def _instance_bytes(self, item: Dict[str, Any], study_uid: str, series_uid: str, sop: str,
                        series_path: str, report: Part10Report) -> bytes:
        if self.source == "auto":
            data = fetch_instance(self.server, study_uid, series_uid, sop)
            if data is not None:
                report.from_server += 1
                report.network_bytes += len(data)
                return data
        data = self._rebuild(item, study_uid, series_uid, sop, series_path, report)
        report.rebuilt += 1
        return data

    def _rebuild(self, item: Dict[str, Any], study_uid: str, series_uid: str, sop: str, series_path: str,
                 report: Part10Report) -> bytes:
        source = RebuildInput.from_item(item)

        def bulk(uri: str) -> bytes:
            value, _ = fetch_bulk_data(self.server, uri, series_path)
            report.network_bytes += len(value)
            return value

        ds = metadata_dataset(source, bulk)
        for what in source.missing:
            report.incomplete.append(f"{sop}: {what}")
            logger.warning("instance %s: bulk data element %s: left out of its file", sop, what)
        syntax = source.stored_syntax
        if source.pixel_tag is not None:
            count = int(ds.get("NumberOfFrames", 1) or 1)
            frames, syntax = self._frames(ds, source, study_uid, series_uid, sop, count, report)
            add_pixel_data(ds, source, frames, syntax)
        return encode_part10(ds, syntax or ts.EXPLICIT_VR_LITTLE_ENDIAN)

    def _frames(self, ds: Any, source: RebuildInput, study_uid: str, series_uid: str, sop: str, count: int,
                report: Part10Report) -> tuple:
        """The frames in the stored encoding, and that syntax: cached ones when they prove to be
        in it, the rest fetched as stored (`transfer-syntax=*`)."""
        native_size = native_frame_size(ds, source.pixel_tag) if source.pixel_tag else 0
        stored = source.stored_syntax
        frames: List[Optional[bytes]] = [None] * count
        if self.cache is not None and stored:
            for number in range(1, count + 1):
                cached = self.cache.get(FrameKey(self.server.url, study_uid, series_uid, sop, number, stored))
                if cached is not None and is_stored_encoding(cached, stored, native_size):
                    frames[number - 1] = cached.data
                    report.frames_from_cache += 1
        wanted = [n for n in range(1, count + 1) if frames[n - 1] is None]
        if wanted:
            fetched = fetch_frames(self.server, study_uid, series_uid, sop, wanted, ANY_SYNTAX,
                                   bulk_data_uri=source.pixel_uri)
            for frame in fetched:
                stored = stored or frame.transfer_syntax_uid
                if not stored or not is_stored_encoding(frame, stored, native_size):
                    raise ValueError(f"frame {frame.frame_number} is not in the stored transfer syntax "
                                     f"({ts.name(stored)}; labelled {frame.content_type})")
                frames[frame.frame_number - 1] = frame.data
                report.network_bytes += len(frame.data)
        return [bytes(f) for f in frames if f is not None], stored


def is_stored_encoding(frame: FrameData, stored: str, native_size: int) -> bool:
    """Whether a frame's bytes are in the stored syntax: native ones have the native size, and
    compressed ones carry the magic bytes of its codec (RLE has none: its label must say so)."""
    family = ts.family(stored)
    if family is None:
        return frame.transfer_syntax_uid == stored
    if not ts.is_encapsulated(stored):
        return len(frame.data) in (native_size, native_size + 1) and sniff(frame.data) is None
    if family == ts.RLE:
        return ts.family(frame.transfer_syntax_uid) == ts.RLE or "rle" in (frame.content_type or "").lower()
    return sniff(frame.data) == family
