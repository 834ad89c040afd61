"""Series of the kinds a PACS holds besides CT/MR stacks, with their ground truth: DX views (2D,
ImagerPixelSpacing and magnification), a CR in MONOCHROME1 without any pixel spacing, a US RGB
cine, an NM tomographic reconstruction, RT dose grids (relative and absolute GridFrameOffsetVector)
and a float parametric map. Written on demand (not part of the cached sample sets)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from .writer import save_dataset

ROOT = "1.2.826.0.1.3680043.8.498.1717"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
SOP_CLASSES = {"DX": "1.2.840.10008.5.1.4.1.1.1.1", "CR": "1.2.840.10008.5.1.4.1.1.1",
               "US": "1.2.840.10008.5.1.4.1.1.3.1", "NM": "1.2.840.10008.5.1.4.1.1.20",
               "RTDOSE": "1.2.840.10008.5.1.4.1.1.481.2", "PMAP": "1.2.840.10008.5.1.4.1.1.30"}


def uid(*parts: object) -> str:
    return f"{ROOT}.{int(hashlib.sha1('/'.join(map(str, parts)).encode()).hexdigest()[:14], 16)}"


@dataclass
class KindSeries:
    """One generated series: its files' datasets and the volumes a correct loader makes of it."""

    key: str
    series_uid: str
    datasets: List[Dataset]
    truth: List[np.ndarray]  # one array per volume: (K, J, I) or (K, J, I, 3)
    ijk_to_lps: List[np.ndarray] = field(default_factory=list)  # per volume
    expect: Dict[str, object] = field(default_factory=dict)


def _base(key: str, modality: str, number: int, rows: int, columns: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = EXPLICIT_LE
    ds.file_meta.MediaStorageSOPClassUID = SOP_CLASSES["PMAP" if key == "pmap" else modality]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(key, "sop", number)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY_UID, uid(key, "series")
    ds.PatientID, ds.PatientName, ds.Modality = "KINDS-17", "Kinds^Seventeen", modality
    ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription = 1700 + len(key), number, key
    ds.Rows, ds.Columns = rows, columns
    return ds


def _grey(ds: Dataset, values: np.ndarray, bits_stored: int, photometric: str = "MONOCHROME2") -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated = values.dtype.itemsize * 8
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
    ds.PixelData = values.astype(f"<u{values.dtype.itemsize}").tobytes()


STUDY_UID = uid("study")


def dx_views(rng: np.random.Generator) -> KindSeries:
    """Three DX views, no position: one volume each, spacing ImagerPixelSpacing / magnification."""
    datasets, truth = [], []
    for number in (1, 2, 3):
        ds = _base("dx_views", "DX", number, 48, 64)
        values = rng.integers(0, 4096, (48, 64)).astype(np.uint16)
        _grey(ds, values, 12)
        ds.ImagerPixelSpacing = [0.2, 0.25]
        ds.EstimatedRadiographicMagnificationFactor = 1.25
        ds.ViewPosition = ("PA", "LL", "AP")[number - 1]
        datasets.append(ds)
        truth.append(values.astype(np.int16)[None])
    matrix = np.diag([0.25 / 1.25, 0.2 / 1.25, 1.0, 1.0])
    return KindSeries("dx_views", datasets[0].SeriesInstanceUID, datasets, truth, [matrix] * 3,
                      {"labels": ["image 1", "image 2", "image 3"], "kind": "image"})


def cr_monochrome1(rng: np.random.Generator) -> KindSeries:
    """One CR in MONOCHROME1 with no pixel spacing at all: 1 mm assumed, and said."""
    ds = _base("cr_mono1", "CR", 1, 40, 50)
    values = rng.integers(0, 1024, (40, 50)).astype(np.uint16)
    _grey(ds, values, 10, "MONOCHROME1")
    return KindSeries("cr_mono1", ds.SeriesInstanceUID, [ds], [values.astype(np.int16)[None]], [np.eye(4)],
                      {"kind": "image", "warning": "1 mm pixels assumed", "photometric": "MONOCHROME1"})


def us_rgb_cine(rng: np.random.Generator, frames: int = 60) -> KindSeries:
    """A US RGB cine of 60 frames (planar configuration 1), FrameTime 33.3 ms: frames along K."""
    ds = _base("us_cine", "US", 1, 32, 40)
    values = rng.integers(0, 256, (frames, 32, 40, 3)).astype(np.uint8)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames, ds.FrameTime = frames, 33.3
    ds.FrameIncrementPointer = 0x00181063
    ds.PixelData = values.transpose(0, 3, 1, 2).tobytes()  # planar: R plane, G plane, B plane per frame
    return KindSeries("us_cine", ds.SeriesInstanceUID, [ds], [values], [np.eye(4)],
                      {"kind": "colour", "frame_times": [round(33.3 * k, 6) for k in range(frames)],
                       "warning": "1 mm pixels assumed"})  # no PixelSpacing (US regions are not read)


def nm_tomo(rng: np.random.Generator, frames: int = 20) -> KindSeries:
    """An NM reconstruction: position/orientation in DetectorInformationSequence, 4 mm planes."""
    ds = _base("nm_tomo", "NM", 1, 32, 32)
    values = rng.integers(0, 30000, (frames, 32, 32)).astype(np.uint16)
    _grey(ds, values, 16)
    ds.NumberOfFrames, ds.ImageType = frames, ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.PixelSpacing, ds.SpacingBetweenSlices, ds.SliceThickness = [4.0, 4.0], 4.0, 4.0
    detector = Dataset()
    detector.ImagePositionPatient = [-64.0, -64.0, -40.0]
    detector.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.DetectorInformationSequence = Sequence([detector])
    matrix = np.diag([4.0, 4.0, 4.0, 1.0])
    matrix[:3, 3] = [-64.0, -64.0, -40.0]
    return KindSeries("nm_tomo", ds.SeriesInstanceUID, [ds], [values.astype(np.int32)], [matrix], {"kind": "volume"})


def rt_dose(rng: np.random.Generator, absolute: bool, frames: int = 10) -> KindSeries:
    """A dose grid (uint32 x DoseGridScaling = Gy) with GridFrameOffsetVector relative or absolute."""
    key = "dose_absolute" if absolute else "dose_relative"
    ds = _base(key, "RTDOSE", 1, 16, 20)
    stored = rng.integers(0, 70000, (frames, 16, 20)).astype(np.uint32)
    _grey(ds, stored, 32)
    ds.NumberOfFrames, ds.DoseGridScaling, ds.DoseUnits, ds.DoseType = frames, 1.5e-4, "GY", "PHYSICAL"
    ds.FrameIncrementPointer = 0x3004000C
    origin = [-50.0, -60.0, -20.0]
    ds.ImagePositionPatient, ds.ImageOrientationPatient = origin, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [3.0, 2.5]
    offsets = [2.5 * k for k in range(frames)]
    ds.GridFrameOffsetVector = [origin[2] + o for o in offsets] if absolute else offsets
    truth = (stored.astype(np.float64) * 1.5e-4).astype(np.float32)
    matrix = np.diag([2.5, 3.0, 2.5, 1.0])
    matrix[:3, 3] = origin
    return KindSeries(key, ds.SeriesInstanceUID, [ds], [truth], [matrix], {"kind": "dose"})


def parametric_map(rng: np.random.Generator, frames: int = 4) -> KindSeries:
    """A float32 parametric map (FloatPixelData, functional groups), values negative and fractional."""
    ds = _base("pmap", "MR", 1, 24, 28)
    values = rng.normal(0.0, 250.0, (frames, 24, 28)).astype(np.float32)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.BitsAllocated = 1, "MONOCHROME2", 32
    ds.NumberOfFrames = frames
    shared = Dataset()
    measures, orientation = Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [1.5, 1.5], 3.0
    orientation.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = Sequence([measures]), Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in range(frames):
        item, position = Dataset(), Dataset()
        position.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.FloatPixelData = values.astype("<f4").tobytes()
    return KindSeries("pmap", ds.SeriesInstanceUID, [ds], [values], [np.diag([1.5, 1.5, 3.0, 1.0])],
                      {"kind": "volume"})


def all_kinds(seed: int = 17) -> List[KindSeries]:
    rng = np.random.default_rng(seed)
    return [dx_views(rng), cr_monochrome1(rng), us_rgb_cine(rng), nm_tomo(rng), rt_dose(rng, False),
            rt_dose(rng, True), parametric_map(rng)]


def write_kinds(target: Path, seed: int = 17) -> Tuple[List[KindSeries], List[Path]]:
    """Every kind's files below `target` (one folder per series); returns the series and the paths."""
    series, paths = all_kinds(seed), []
    for item in series:
        folder = Path(target) / item.key
        folder.mkdir(parents=True, exist_ok=True)
        for ds in item.datasets:
            path = folder / f"{ds.InstanceNumber}.dcm"
            save_dataset(ds, path)
            paths.append(path)
    return series, paths
