"""Per-frame geometry read from instance metadata: single-frame objects and enhanced multi-frame
objects (functional groups) become the same `FrameGeometry` records."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from pydicom import Dataset

Vector = Tuple[float, float, float]


class GeometryError(ValueError):
    """Metadata that cannot give a correct volume; the message names the instance and attribute."""


@dataclass(frozen=True)
class FrameGeometry:
    """Where one frame lies and how its stored values become modality values."""

    sop_instance_uid: str
    frame_number: int  # 1-based, as in WADO-RS frame URLs
    position: Vector  # ImagePositionPatient (LPS, mm)
    orientation: Tuple[float, ...]  # ImageOrientationPatient: row cosines, then column cosines
    pixel_spacing: Tuple[float, float]  # (row spacing, column spacing)
    rows: int
    columns: int
    slope: float
    intercept: float
    image_type: Tuple[str, ...]
    instance_number: Optional[int]
    phase_keys: Tuple[Tuple[str, str], ...]  # attributes that tell phases apart (multi-phase series)
    group: str = ""  # frames of one group form their own volume (a 2D image, a cine loop, a dose grid)
    group_label: str = ""  # how that volume is named (e.g. "image 3")
    spacing_source: str = "PixelSpacing"  # or ImagerPixelSpacing, NominalScannedPixelSpacing, default


PHASE_ATTRIBUTES = ("TemporalPositionIdentifier", "TriggerTime", "AcquisitionNumber", "EchoNumbers",
                    "DiffusionBValue", "AcquisitionTime")


def frames_of(dataset: Dataset, sop_instance_uid: str) -> List[FrameGeometry]:
    """All frames of one instance; functional groups take precedence over top-level attributes."""
    count = _int(dataset.get("NumberOfFrames")) or 1
    shared = _first_item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if count > 1 and (per_frame is None or len(per_frame) != count):
        # frames without functional groups: cine, NM, dose (imported here: plain_frames uses this module)
        from .plain_frames import multiframe_frames

        return multiframe_frames(dataset, sop_instance_uid, count)
    if per_frame is None and shared is None and "ImagePositionPatient" not in dataset \
            and "ImageOrientationPatient" not in dataset:
        from .plain_frames import image_frame  # a 2D image (CR, DX, SC...): no position, no orientation

        return [image_frame(dataset, sop_instance_uid)]
    frames = []
    for index in range(count):
        groups = [g for g in ((per_frame[index] if per_frame is not None else None), shared) if g is not None]
        frames.append(_frame(dataset, groups, sop_instance_uid, index + 1))
    return frames


def _frame(ds: Dataset, groups: Sequence[Dataset], sop: str, number: int) -> FrameGeometry:
    def find(sequence: str, keyword: str) -> Any:
        for group in groups:
            item = _first_item(group, sequence)
            if item is not None and keyword in item:
                return item.get(keyword)
        return ds.get(keyword)

    where = f"instance {sop}" + (f" frame {number}" if number > 1 or groups else "")
    position = _floats(find("PlanePositionSequence", "ImagePositionPatient"), 3, "ImagePositionPatient", where)
    orientation = _floats(find("PlaneOrientationSequence", "ImageOrientationPatient"), 6,
                          "ImageOrientationPatient", where)
    spacing = _floats(find("PixelMeasuresSequence", "PixelSpacing"), 2, "PixelSpacing", where)
    if min(spacing) <= 0:
        raise GeometryError(f"{where}: PixelSpacing {spacing} must be positive")
    row, column = np.array(orientation[:3]), np.array(orientation[3:])
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(column) - 1) > 1e-3 or abs(row @ column) > 1e-3:
        raise GeometryError(f"{where}: ImageOrientationPatient {orientation} is not two orthogonal unit vectors")
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    if not rows or not columns:
        raise GeometryError(f"{where}: Rows and Columns are required")
    slope = find("PixelValueTransformationSequence", "RescaleSlope")
    if slope in (None, "") and ds.get("DoseGridScaling") not in (None, ""):  # RT dose: stored x scaling = Gy
        slope = ds.get("DoseGridScaling")
    intercept = find("PixelValueTransformationSequence", "RescaleIntercept")
    frame_content = next((_first_item(g, "FrameContentSequence") for g in groups
                          if _first_item(g, "FrameContentSequence") is not None), None)
    phase_keys = []
    for keyword in PHASE_ATTRIBUTES:
        value = (frame_content.get(keyword) if frame_content is not None and keyword in frame_content
                 else ds.get(keyword))
        if value not in (None, ""):
            phase_keys.append((keyword, str(value)))
    if frame_content is not None and "TemporalPositionIndex" in frame_content:
        phase_keys.insert(0, ("TemporalPositionIndex", str(frame_content.TemporalPositionIndex)))
    image_type = ds.get("ImageType") or ()
    return FrameGeometry(
        sop_instance_uid=sop, frame_number=number, position=(position[0], position[1], position[2]),
        orientation=tuple(orientation), pixel_spacing=(spacing[0], spacing[1]), rows=rows, columns=columns,
        slope=float(slope) if slope not in (None, "") else 1.0,
        intercept=float(intercept) if intercept not in (None, "") else 0.0,
        image_type=tuple(str(v).upper() for v in (image_type if not isinstance(image_type, str) else [image_type])),
        instance_number=_int(ds.get("InstanceNumber")), phase_keys=tuple(phase_keys),
    )


def _first_item(ds: Optional[Dataset], keyword: str) -> Optional[Dataset]:
    if ds is None:
        return None
    sequence = ds.get(keyword)
    return sequence[0] if sequence else None


def _floats(value: Any, count: int, keyword: str, where: str) -> List[float]:
    if value is None or value == "":
        raise GeometryError(f"{where}: {keyword} is missing")
    values = list(value) if not isinstance(value, (str, bytes)) else str(value).split("\\")
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise GeometryError(f"{where}: {keyword} {value!r} is not numeric") from None
    if len(numbers) != count or not all(np.isfinite(numbers)):
        raise GeometryError(f"{where}: {keyword} must have {count} finite values, not {value!r}")
    return numbers


def _int(value: Any) -> Optional[int]:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None
