"""Writes a static DICOMweb tree (OHIF static-wado layout) from DICOM files.

Many deployments serve DICOMweb as precomputed files (S3/CloudFront, any web server): QIDO lists
as JSON, series metadata as JSON, one file per frame. Tests serve such a tree with nginx (Range,
ETag) and the demo serves it from Python; both read the layout and `static_tree.json` written here.

Layout under `out_dir` (every JSON file also gets a `.gz` sibling for gzip_static):
    studies/index.json                                     QIDO study records
    studies/<st>/series/index.json                         QIDO series records
    studies/<st>/series/<se>/metadata                      WADO-RS series metadata (DICOM JSON)
    studies/<st>/series/<se>/instances/index.json          QIDO instance records
    studies/<st>/series/<se>/instances/<sop>/frames/<n>    frame n (1-based), stored bytes
    studies/<st>/series/<se>/instances/<sop>/bulkdata/<k>  other large binary values
    studies/<st>/series/<se>/instances/<sop>/<alt>/<n>     optional reduced copies of frame n
                                                           (`jlsThumbnail`, `lossy`: static_alternates.py)
    static_tree.json                                       the StaticTree record (content types)
"""
from __future__ import annotations

import gzip
import json
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Dict, Iterable, List, Optional

import pydicom
from pydicom import encaps
from pydicom.dataelem import DataElement
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from ..transfer_syntax import is_encapsulated, media_type
from .static_alternates import (ALTERNATE_CONTENT_TYPE, alternate_names_for, check_alternate_names,
                                pixel_description, write_alternates)

logger = logging.getLogger(__name__)

RECORD_NAME = "static_tree.json"
# The static-wado generator's fixed boundary: its frame files carry it on their first line only.
MULTIPART_BOUNDARY = "BOUNDARY_FIXED_32934857949532587"
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
STUDY_KEYWORDS = ("SpecificCharacterSet", "StudyDate", "StudyTime", "AccessionNumber",
                  "ReferringPhysicianName", "StudyDescription", "PatientName", "PatientID",
                  "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID")
SERIES_KEYWORDS = ("SpecificCharacterSet", "SeriesDate", "SeriesTime", "Modality", "SeriesDescription",
                   "BodyPartExamined", "StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber")
INSTANCE_KEYWORDS = ("SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID",
                     "SeriesInstanceUID", "InstanceNumber", "Rows", "Columns", "NumberOfFrames",
                     "AvailableTransferSyntaxUID")


@dataclass
class StaticInstance:
    """Where one instance's frames are and how they are labelled on the wire."""

    study_uid: str
    series_uid: str
    sop_uid: str
    transfer_syntax: str
    content_type: str  # of one frame's bytes (the part's type when multipart)
    frames: int
    source: str = ""  # the DICOM file it came from
    alternates: List[str] = field(default_factory=list)  # names of the reduced copies it has

    @property
    def instance_dir(self) -> str:
        """Relative to the tree root."""
        return f"studies/{self.study_uid}/series/{self.series_uid}/instances/{self.sop_uid}"

    @property
    def frames_dir(self) -> str:
        """Relative to the tree root."""
        return f"{self.instance_dir}/frames"

    def alternate_dir(self, name: str) -> str:
        """Relative to the tree root (whether or not this instance has that alternate)."""
        return f"{self.instance_dir}/{name}"


@dataclass
class StaticTree:
    """What write_static_tree wrote; saved as static_tree.json at the root so a server can reload it."""

    root: Path
    multipart_frames: bool
    instances: List[StaticInstance] = field(default_factory=list)
    alternates: List[str] = field(default_factory=list)  # asked for; each instance lists what it got

    @property
    def study_uids(self) -> List[str]:
        return sorted({i.study_uid for i in self.instances})

    def series_uids(self, study_uid: str) -> List[str]:
        return sorted({i.series_uid for i in self.instances if i.study_uid == study_uid})

    def frame_path(self, instance: StaticInstance, number: int) -> Path:
        return self.root / instance.frames_dir / str(number)

    def frame_content_type(self, instance: StaticInstance) -> str:
        """The HTTP Content-Type of a frame file (multipart without boundary, as static-wado uploads)."""
        if self.multipart_frames:
            return f'multipart/related; type="{instance.content_type}"'
        return instance.content_type

    def alternate_path(self, instance: StaticInstance, name: str, number: int) -> Path:
        """The file of frame `number` (1-based) in alternate `name`; KeyError if the instance has none."""
        if name not in instance.alternates:
            raise KeyError(f"instance {instance.sop_uid} has no {name!r} alternate (has {instance.alternates})")
        return self.root / instance.alternate_dir(name) / str(number)

    alternate_content_type = ALTERNATE_CONTENT_TYPE  # alternates are plain files, never multipart

    def save(self) -> None:
        record = {"multipart_frames": self.multipart_frames, "alternates": self.alternates,
                  "instances": [asdict(i) for i in self.instances]}
        (self.root / RECORD_NAME).write_text(json.dumps(record, indent=1))

    @classmethod
    def load(cls, root: Path) -> "StaticTree":
        """Also reads records written before alternates existed (no "alternates" keys)."""
        record = json.loads((Path(root) / RECORD_NAME).read_text())
        return cls(Path(root), bool(record["multipart_frames"]),
                   [StaticInstance(**i) for i in record["instances"]], list(record.get("alternates", [])))


def content_type_for(transfer_syntax: str) -> str:
    return media_type(transfer_syntax)


def _write_json(path: Path, value: Any) -> None:
    """JSON plus a deterministic .gz sibling (nginx gzip_static)."""
    data = json.dumps(value, separators=(",", ":")).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(data, compresslevel=6, mtime=0))


def _tags(keywords: Iterable[str]) -> List[str]:
    """DICOM JSON keys ("0020000D") of the given keywords."""
    return [f"{tag_for_keyword(k):08X}" for k in keywords]


STUDY_TAGS = _tags(STUDY_KEYWORDS)
SERIES_TAGS = _tags(SERIES_KEYWORDS)
INSTANCE_TAGS = _tags(INSTANCE_KEYWORDS)


def _subset(record: Dict[str, Any], tags: Iterable[str]) -> Dict[str, Any]:
    wanted = set(tags)
    return {tag: value for tag, value in record.items() if tag in wanted}


def _count(vr: str, value: Any) -> Dict[str, Any]:
    return {"vr": vr, "Value": [value]}


def _native_frame_size(ds: Dataset, keyword: str) -> int:
    rows, columns = int(ds.Rows), int(ds.Columns)
    if keyword == "FloatPixelData":
        return rows * columns * 4
    if keyword == "DoubleFloatPixelData":
        return rows * columns * 8
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        samples = 2  # two samples per pixel on average
    bits = rows * columns * samples * int(ds.BitsAllocated)
    if bits % 8:
        raise ValueError("frames that are not byte-aligned (BitsAllocated 1) are not supported")
    return bits // 8


def split_frames(ds: Dataset) -> List[bytes]:
    """The stored bytes of every frame: native slices, or the codestream of each encapsulated frame."""
    keyword = next((k for k in PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        return []
    data = ds[keyword].value
    count = int(ds.get("NumberOfFrames", 1) or 1)
    syntax = ds.file_meta.TransferSyntaxUID
    if keyword == "PixelData" and is_encapsulated(syntax):
        if hasattr(encaps, "generate_frames"):  # pydicom >= 3
            extended = None
            if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
                extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
            frames = list(encaps.generate_frames(data, number_of_frames=count, extended_offsets=extended))
        else:  # pydicom 2.4
            frames = list(encaps.generate_pixel_data_frame(data, count))
    else:
        size = _native_frame_size(ds, keyword)
        if len(data) < size * count:
            raise ValueError(f"pixel data holds {len(data)} bytes, {count} frames need {size * count}")
        frames = [bytes(data[i * size:(i + 1) * size]) for i in range(count)]
    if len(frames) != count:
        raise ValueError(f"found {len(frames)} frames, NumberOfFrames says {count}")
    return frames


def _multipart(frame: bytes, content_type: str, transfer_syntax: str) -> bytes:
    head = (f"--{MULTIPART_BOUNDARY}\r\nContent-Type: {content_type};transfer-syntax={transfer_syntax}"
            "\r\n\r\n").encode("ascii")
    return head + frame + f"\r\n--{MULTIPART_BOUNDARY}--".encode("ascii")


class _SeriesCollector:
    """Per-series metadata and QIDO records, kept small (no pixel data) while files stream through."""

    def __init__(self) -> None:
        self.metadata: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
        self.instances: Dict[str, List[Dict[str, Any]]] = defaultdict(list)
        self.series: Dict[str, Dict[str, Any]] = {}
        self.series_study: Dict[str, str] = {}
        self.studies: Dict[str, Dict[str, Any]] = {}
        self.study_modalities: Dict[str, set] = defaultdict(set)


def _instance_metadata(ds: Dataset, instance: StaticInstance, series_dir: Path) -> Dict[str, Any]:
    """WADO-RS style metadata: pixel data and other large binaries as BulkDataURIs relative to the series.

    Drops the pixel data element from `ds` (the frames are already written).
    """
    pixel = None
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds:
            pixel = ds[keyword]
            del ds[keyword]
    counter = [0]

    def bulk(element: DataElement) -> str:
        counter[0] += 1
        name = f"{element.tag:08X}-{counter[0]}"
        relative = f"instances/{instance.sop_uid}/bulkdata/{name}"
        target = series_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        value = element.value
        target.write_bytes(value if isinstance(value, (bytes, bytearray)) else b"")
        return relative

    record = ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=bulk,
                             suppress_invalid_tags=True)
    if pixel is not None:
        if pixel.keyword == "PixelData":
            vr = "OB" if is_encapsulated(ds.file_meta.TransferSyntaxUID) or int(ds.BitsAllocated) <= 8 else "OW"
        else:
            vr = pixel.VR
        record[f"{pixel.tag:08X}"] = {"vr": vr, "BulkDataURI": f"instances/{instance.sop_uid}/frames"}
    record["00083002"] = {"vr": "UI", "Value": [instance.transfer_syntax]}  # AvailableTransferSyntaxUID
    return dict(sorted(record.items()))


def _sort_key(record: Dict[str, Any], tag: str) -> Any:
    values = record.get(tag, {}).get("Value") or [0]
    return (values[0] if isinstance(values[0], (int, float)) else 0)


def write_static_tree(files: Iterable[Path], out_dir: Path, multipart_frames: bool = False,
                      alternates: Iterable[str] = (),
                      alternate_series: Optional[Collection[str]] = None) -> StaticTree:
    """Write the tree for `files` into `out_dir` (meant to be empty); returns (and saves) its record.

    `alternates` names reduced copies to write beside the frames (see static_alternates.py);
    `alternate_series` limits them to those SeriesInstanceUIDs (None: every series), so one tree
    can hold series with and without alternates, as real servers do.
    """
    names = check_alternate_names(alternates)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    tree = StaticTree(root, multipart_frames, alternates=names)
    seen = _SeriesCollector()
    for path in files:
        try:
            ds = pydicom.dcmread(str(path))
        except Exception as error:
            raise ValueError(f"{path}: not a readable DICOM file: {error}") from error
        study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
        syntax = str(ds.file_meta.TransferSyntaxUID)
        frames = split_frames(ds)
        instance = StaticInstance(study, series, sop, syntax, content_type_for(syntax), len(frames), str(path))
        frames_dir = root / instance.frames_dir
        if frames:
            frames_dir.mkdir(parents=True, exist_ok=True)
        for number, frame in enumerate(frames, start=1):
            body = _multipart(frame, instance.content_type, syntax) if multipart_frames else frame
            (frames_dir / str(number)).write_bytes(body)
        if names and frames and (alternate_series is None or series in alternate_series):
            _add_alternates(root, instance, ds, frames, names, path)
        series_dir = root / "studies" / study / "series" / series
        metadata = _instance_metadata(ds, instance, series_dir)
        seen.metadata[series].append(metadata)
        seen.instances[series].append(_subset(metadata, INSTANCE_TAGS))
        seen.series.setdefault(series, _subset(metadata, SERIES_TAGS))
        seen.series_study[series] = study
        seen.studies.setdefault(study, _subset(metadata, STUDY_TAGS))
        if "Modality" in ds:
            seen.study_modalities[study].add(str(ds.Modality))
        tree.instances.append(instance)
    _write_lists(root, tree, seen)
    tree.save()
    logger.info("static tree in %s: %d studies, %d instances", root, len(seen.studies), len(tree.instances))
    return tree


def _add_alternates(root: Path, instance: StaticInstance, ds: Dataset, frames: List[bytes],
                    names: List[str], path: Path) -> None:
    """Write the alternates this instance's pixels allow and record them on the instance."""
    pixels = pixel_description(ds)
    granted = alternate_names_for(pixels, names) if pixels is not None else []
    if not granted:
        return
    try:
        write_alternates(root / instance.instance_dir, frames, instance.transfer_syntax, pixels, granted)
    except ValueError as error:  # DecodeError, CodecUnavailable: name the file
        raise ValueError(f"{path}: cannot write alternates {granted}: {error}") from error
    instance.alternates = granted


def _write_lists(root: Path, tree: StaticTree, seen: _SeriesCollector) -> None:
    """The JSON lists, once every file has been read (counts need the whole set)."""
    study_records = []
    for study, record in sorted(seen.studies.items()):
        series_list = [s for s, st in seen.series_study.items() if st == study]
        record["00080061"] = {"vr": "CS", "Value": sorted(seen.study_modalities[study])}
        record["00201206"] = _count("IS", len(series_list))
        record["00201208"] = _count("IS", sum(len(seen.instances[s]) for s in series_list))
        study_records.append(dict(sorted(record.items())))
        series_records = []
        for series in series_list:
            series_record = seen.series[series]
            series_record["00201209"] = _count("IS", len(seen.instances[series]))
            series_records.append(dict(sorted(series_record.items())))
            series_dir = root / "studies" / study / "series" / series
            _write_json(series_dir / "metadata", sorted(seen.metadata[series], key=lambda r: _sort_key(r, "00200013")))
            _write_json(series_dir / "instances" / "index.json",
                        sorted(seen.instances[series], key=lambda r: _sort_key(r, "00200013")))
        series_records.sort(key=lambda r: _sort_key(r, "00200011"))
        _write_json(root / "studies" / study / "series" / "index.json", series_records)
    _write_json(root / "studies" / "index.json", study_records)


def frame_bytes_from_body(body: bytes) -> bytes:
    """Strip a single-part multipart wrapper (boundary on the first line), or return the body as is."""
    if not body.startswith(b"--"):
        return body
    first_line, _, rest = body.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    closing = b"\r\n" + first_line + b"--"
    end = payload.rfind(closing)
    return payload[:end] if end >= 0 else payload

