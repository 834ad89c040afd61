"""Write a volume as a single-frame DICOM series with exact geometry, and record its ground truth.

Everything here is deterministic: UIDs come from fixed entropy sources, dates are the study's,
and numbers are formatted once (the manifest stores the values as written, not as computed).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from .manifest import SeriesInfo, StudyInfo

log = logging.getLogger(__name__)

UID_NAMESPACE = "ProgressiveDicomFetch sampledata v1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
MANUFACTURER = "ProgressiveDicomFetch"
MODEL = "SyntheticPhantom"


def uid(*parts: Any) -> str:
    """A deterministic UID: the same parts give the same UID on every run and machine."""
    return generate_uid(entropy_srcs=[UID_NAMESPACE] + [str(p) for p in parts])


def ds_value(value: float) -> float:
    """Round a number to what fits a 16-character DS, so manifest and file agree exactly."""
    return float(ds_text(value))


def ds_text(value: float) -> str:
    for digits in (6, 5, 4, 3, 2, 1, 0):
        text = f"{float(value):.{digits}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        if text in ("-0", ""):
            text = "0"
        if len(text) <= 16:
            return text
    raise ValueError(f"{value} does not fit a DS")


@dataclass
class Storage:
    """How modality values are stored: bit depth, sign, rescale, optional padding value."""

    bits_stored: int = 12
    signed: bool = False
    slope: float = 1.0
    intercept: float = -1024.0
    padding: Optional[int] = None

    @property
    def stored_range(self) -> Tuple[int, int]:
        if self.signed:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1

    @property
    def stored_dtype(self) -> Any:
        return np.int16 if self.signed else np.uint16

    @property
    def out_dtype(self) -> str:
        """The narrowest dtype a correct loader can use for the modality values."""
        if float(self.slope).is_integer() and float(self.intercept).is_integer():
            lo, hi = self.stored_range
            values = [lo * self.slope + self.intercept, hi * self.slope + self.intercept]
            if -32768 <= min(values) and max(values) <= 32767:
                return "int16"
            return "int32"
        return "float32"

    def to_stored(self, values: np.ndarray) -> np.ndarray:
        lo, hi = self.stored_range
        stored = np.rint((values - self.intercept) / self.slope)
        return np.clip(stored, lo, hi).astype(self.stored_dtype)

    def to_modality(self, stored: np.ndarray) -> np.ndarray:
        if self.out_dtype != "float32":  # integer rescale: exact and without a float64 copy
            out = stored.astype(np.int32)
            if self.slope != 1:
                out *= int(self.slope)
            out += int(self.intercept)
            return out.astype(self.out_dtype)
        out = stored.astype(np.float64) * self.slope + self.intercept
        return out.astype(np.float32)


@dataclass
class SeriesSpec:
    """Series-level attributes shared by every instance of a series."""

    key: str
    study: StudyInfo
    series_number: int
    description: str
    modality: str
    body_part: str
    iop: Sequence[float]
    pixel_spacing: Sequence[float]  # (row spacing, column spacing)
    slice_thickness: Optional[float]
    storage: Storage
    window: Optional[Tuple[float, float]]  # None: the series carries no window presets
    spacing_between: Optional[float] = None
    sop_class_uid: str = CT_IMAGE_STORAGE
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL")
    frame_of_reference_uid: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def series_uid(self) -> str:
        return uid("series", self.key)

    @property
    def for_uid(self) -> str:
        return self.frame_of_reference_uid or uid("for", self.study.key)


@dataclass
class SliceSpec:
    """One instance; ``in_volume`` is False for objects a loader must leave out (localizers)."""

    position: Sequence[float]
    stored: np.ndarray
    instance_number: int
    in_volume: bool = True
    iop: Optional[Sequence[float]] = None
    pixel_spacing: Optional[Sequence[float]] = None
    extra: Dict[str, Any] = field(default_factory=dict)


def slice_normal(iop: Sequence[float]) -> np.ndarray:
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    return normal / np.linalg.norm(normal)


def ijk_matrix(iop, pixel_spacing, origin, slice_step) -> np.ndarray:
    """IJK->LPS: column i moves along the row direction by the column spacing, and so on."""
    m = np.eye(4)
    m[:3, 0] = np.asarray(iop[:3], float) * pixel_spacing[1]
    m[:3, 1] = np.asarray(iop[3:], float) * pixel_spacing[0]
    m[:3, 2] = np.asarray(slice_step, float)
    m[:3, 3] = np.asarray(origin, float)
    return m


def sort_along_normal(iop, positions: Sequence[Sequence[float]]) -> List[int]:
    normal = slice_normal(iop)
    distances = [float(np.dot(normal, p)) for p in positions]
    return sorted(range(len(positions)), key=lambda n: distances[n])


def base_dataset(study: StudyInfo, spec: SeriesSpec, sop_uid: str, ts: str) -> FileDataset:
    """Patient, study, series and equipment modules with a valid file meta header."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = spec.sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = uid("implementation")
    meta.ImplementationVersionName = "PDF_SAMPLE_1"
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(spec.image_type)
    ds.InstanceCreationDate = study.study_date
    ds.InstanceCreationTime = study.study_time
    ds.SOPClassUID = spec.sop_class_uid
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = study.study_date
    ds.StudyTime = study.study_time
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = study.study_time
    ds.AccessionNumber = study.accession_number
    ds.Modality = spec.modality
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = "Synthetic Test Hospital"
    ds.ReferringPhysicianName = study.referring_physician
    ds.StationName = "PDFSIM01"
    ds.StudyDescription = study.study_description
    ds.SeriesDescription = spec.description
    ds.ManufacturerModelName = MODEL
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.patient_birth_date
    ds.PatientSex = study.patient_sex
    ds.BodyPartExamined = spec.body_part
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.StudyID = study.study_id
    ds.SeriesNumber = spec.series_number
    ds.FrameOfReferenceUID = spec.for_uid
    ds.PositionReferenceIndicator = ""
    ds.PatientPosition = "HFS"
    return ds


def set_pixel_module(ds: Dataset, spec: SeriesSpec, rows: int, cols: int) -> None:
    st = spec.storage
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 16
    ds.BitsStored = st.bits_stored
    ds.HighBit = st.bits_stored - 1
    ds.PixelRepresentation = 1 if st.signed else 0
    if st.padding is not None:
        # US or SS follows PixelRepresentation; pydicom resolves the ambiguous VR on write.
        ds.PixelPaddingValue = int(st.padding)
    if spec.window is not None:
        ds.WindowCenter = ds_text(spec.window[0])
        ds.WindowWidth = ds_text(spec.window[1])
    if spec.modality != "MR":  # the MR Image IOD has no Modality LUT module
        ds.RescaleIntercept = ds_text(st.intercept)
        ds.RescaleSlope = ds_text(st.slope)
        ds.RescaleType = "HU" if spec.modality == "CT" else "US"


def save_dataset(ds: FileDataset, path: Path) -> None:
    """Write with preamble and file meta on pydicom 2.4 and 3.x alike."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ts = ds.file_meta.TransferSyntaxUID
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(str(path), enforce_file_format=True)
    else:  # pragma: no cover - pydicom 2.x
        ds.is_little_endian = True
        ds.is_implicit_VR = ts == ImplicitVRLittleEndian
        ds.save_as(str(path), write_like_original=False)


class SeriesWriter:
    """Writes series under one root and collects their manifest records."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.series: List[SeriesInfo] = []
        (self.root / "truth").mkdir(parents=True, exist_ok=True)

    def save_truth(self, key: str, volume: np.ndarray) -> str:
        rel = f"truth/{key}.npy"
        np.save(str(self.root / rel), volume)
        return rel

    def write(
        self,
        spec: SeriesSpec,
        slices: List[SliceSpec],
        truth: Optional[np.ndarray] = None,
        ijk: Optional[np.ndarray] = None,
        positions: Optional[List[List[float]]] = None,
        expect: Optional[Dict[str, Any]] = None,
        ts: str = ExplicitVRLittleEndian,
    ) -> SeriesInfo:
        """Write the instances in the given order; derive truth/geometry unless overridden."""
        iop = [ds_value(v) for v in spec.iop]
        spacing = [ds_value(v) for v in spec.pixel_spacing]
        for s in slices:
            s.position = [ds_value(v) for v in s.position]
        volume = [s for s in slices if s.in_volume]
        order = sort_along_normal(iop, [s.position for s in volume])
        sorted_slices = [volume[n] for n in order]
        if positions is None:
            positions = [list(s.position) for s in sorted_slices]
        if ijk is None:
            first, last = np.asarray(positions[0]), np.asarray(positions[-1])
            step = (last - first) / max(len(positions) - 1, 1)
            ijk = ijk_matrix(iop, spacing, first, step)
        if truth is None:
            truth = spec.storage.to_modality(np.stack([s.stored for s in sorted_slices]))
        rel_dir = f"{spec.study.key}/{spec.key}"
        files, sops = [], []
        for s in slices:
            sop = uid("sop", spec.key, s.instance_number, s.in_volume)
            ds = base_dataset(spec.study, spec, sop, ts)
            s_iop = [ds_value(v) for v in s.iop] if s.iop is not None else iop
            s_spacing = s.pixel_spacing if s.pixel_spacing is not None else spacing
            if spec.modality == "CT":
                ds.KVP = "120"
            if spec.slice_thickness:
                ds.SliceThickness = ds_text(spec.slice_thickness)
            if spec.spacing_between is not None:
                ds.SpacingBetweenSlices = ds_text(spec.spacing_between)
            ds.AcquisitionNumber = 1
            ds.InstanceNumber = s.instance_number
            ds.ImagePositionPatient = [ds_text(v) for v in s.position]
            ds.ImageOrientationPatient = [ds_text(v) for v in s_iop]
            ds.SliceLocation = ds_text(float(np.dot(slice_normal(s_iop), s.position)))
            for name, value in spec.extra.items():
                setattr(ds, name, value)
            for name, value in s.extra.items():
                setattr(ds, name, value)
            set_pixel_module(ds, spec, s.stored.shape[0], s.stored.shape[1])
            ds.PixelSpacing = [ds_text(v) for v in s_spacing]
            ds.PixelData = np.ascontiguousarray(s.stored.astype(spec.storage.stored_dtype)).tobytes()
            ds["PixelData"].VR = "OW"
            rel = f"{rel_dir}/IM{len(files) + 1:05d}.dcm"
            save_dataset(ds, self.root / rel)
            files.append(rel)
            sops.append(sop)
        first_stored = volume[0].stored
        info = SeriesInfo(
            key=spec.key,
            study_key=spec.study.key,
            study_uid=spec.study.study_uid,
            series_uid=spec.series_uid,
            series_number=spec.series_number,
            modality=spec.modality,
            description=spec.description,
            sop_class_uid=spec.sop_class_uid,
            transfer_syntax_uid=ts,
            files=files,
            sop_instance_uids=sops,
            num_instances=len(files),
            num_slices=int(truth.shape[-3]),
            num_frames=len(files),
            rows=int(first_stored.shape[0]),
            columns=int(first_stored.shape[1]),
            pixel_spacing=spacing,
            slice_thickness=spec.slice_thickness,
            ijk_to_lps=np.asarray(ijk, float).tolist(),
            slice_positions=[list(map(float, p)) for p in positions],
            truth=self.save_truth(spec.key, truth),
            truth_shape=list(truth.shape),
            dtype=str(truth.dtype),
            expect=dict(expect or {}),
        )
        self.add(info, spec.study)
        log.debug("wrote %s: %d files", spec.key, len(files))
        return info

    def add(self, info: SeriesInfo, study: StudyInfo) -> None:
        self.series.append(info)
        study.series_keys.append(info.key)
