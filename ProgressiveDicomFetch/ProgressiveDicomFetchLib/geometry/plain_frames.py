"""Frames of objects without per-frame functional groups, as Slicer's DICOM plugins place them:

- a 2D image (no ImagePositionPatient/ImageOrientationPatient): one slice at the origin, axes along
  L and P, its own volume;
- RT dose: planes at ImagePositionPatient plus GridFrameOffsetVector along the normal (relative
  offsets when the first is 0, else absolute coordinates along the normal, PS3.3 C.8.8.3.2);
- NM tomographic reconstructions: DetectorInformationSequence position/orientation, planes
  SpacingBetweenSlices (or SliceThickness) apart;
- anything else (US/XA/RF cine, other NM frame sets): frames along K, 1 mm apart.
Pixel spacing: PixelSpacing, else ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor
(projection images), else NominalScannedPixelSpacing, else 1 mm (said in the volume's messages).
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from pydicom import Dataset

from .frames import FrameGeometry, GeometryError, _first_item, _floats, _int

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
DEFAULT_SPACING = "default"
TOMO_TYPES = ("RECON TOMO", "RECON GATED TOMO")


def pixel_spacing(ds: Dataset, where: str) -> Tuple[Tuple[float, float], str]:
    """(row, column) spacing in mm and the attribute it came from ("default": 1 mm, none given)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        if ds.get(keyword) in (None, ""):
            continue
        spacing = _floats(ds.get(keyword), 2, keyword, where)
        if min(spacing) <= 0:
            raise GeometryError(f"{where}: {keyword} {spacing} must be positive")
        if keyword == "ImagerPixelSpacing":
            factor = _positive(ds.get("EstimatedRadiographicMagnificationFactor"))
            if factor:  # at the detector -> at the isocentre (PS3.3 C.8.11.7.1.1)
                spacing = [value / factor for value in spacing]
        return (spacing[0], spacing[1]), keyword
    return (1.0, 1.0), DEFAULT_SPACING


def image_frame(ds: Dataset, sop: str) -> FrameGeometry:
    """A 2D image: one slice at the origin, its own volume, named by its InstanceNumber."""
    number = _int(ds.get("InstanceNumber"))
    return _plain(ds, sop, 1, (0.0, 0.0, 0.0), AXIAL, f"image {number if number is not None else sop}")


def multiframe_frames(ds: Dataset, sop: str, count: int) -> List[FrameGeometry]:
    """Every frame of a multi-frame object without functional groups (module docstring)."""
    where = f"instance {sop}"
    modality = str(ds.get("Modality", "")).upper()
    label = _label(ds, sop, modality)
    offsets = ds.get("GridFrameOffsetVector")
    if offsets not in (None, ""):
        origin, orientation = _placed(ds, ds, where)
        values = _floats(offsets, count, "GridFrameOffsetVector", where)
        normal = _normal(orientation)
        if values[0] != 0:  # absolute form: coordinates along the normal (z for axial planes)
            values = [v - float(np.dot(origin, normal)) for v in values]
        positions = [origin + value * normal for value in values]
    elif modality == "NM" and any(t in _image_type(ds) for t in TOMO_TYPES):
        detector = _first_item(ds, "DetectorInformationSequence") or ds
        origin, orientation = _placed(ds, detector, where)
        step = _slice_step(ds, where)
        positions = [origin + k * step * _normal(orientation) for k in range(count)]
    else:  # cine and other frame sets: along K, 1 mm apart, where the object says it lies (if it does)
        origin = np.array(_floats(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient", where)) \
            if ds.get("ImagePositionPatient") not in (None, "") else np.zeros(3)
        orientation = tuple(_floats(ds.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", where)) \
            if ds.get("ImageOrientationPatient") not in (None, "") else AXIAL
        positions = [origin + k * _normal(orientation) for k in range(count)]
    return [_plain(ds, sop, k + 1, tuple(float(v) for v in positions[k]), orientation, label) for k in range(count)]


def frame_times(ds: Dataset) -> Optional[List[float]]:
    """Each frame's time in ms from the first (FrameTimeVector, else FrameTime); None when not given."""
    count = _int(ds.get("NumberOfFrames")) or 1
    vector = ds.get("FrameTimeVector")
    if vector not in (None, ""):
        increments = [float(v) for v in (vector if not isinstance(vector, (str, float, int)) else [vector])]
        if len(increments) == count:  # the first is 0; each is the time since the previous frame
            return [round(float(v), 6) for v in np.cumsum(increments)]  # no float dust (99.89999...)
    step = _positive(ds.get("FrameTime"))
    return [round(k * step, 6) for k in range(count)] if step else None


def _plain(ds: Dataset, sop: str, number: int, position: Sequence[float], orientation: Sequence[float],
           label: str) -> FrameGeometry:
    where = f"instance {sop}"
    spacing, source = pixel_spacing(ds, where)
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    if not rows or not columns:
        raise GeometryError(f"{where}: Rows and Columns are required")
    slope = ds.get("RescaleSlope")
    if slope in (None, ""):
        slope = ds.get("DoseGridScaling")
    intercept = ds.get("RescaleIntercept")
    return FrameGeometry(
        sop_instance_uid=sop, frame_number=number, position=(position[0], position[1], position[2]),
        orientation=tuple(float(v) for v in orientation), pixel_spacing=spacing, rows=rows, columns=columns,
        slope=float(slope) if slope not in (None, "") else 1.0,
        intercept=float(intercept) if intercept not in (None, "") else 0.0,
        image_type=_image_type(ds), instance_number=_int(ds.get("InstanceNumber")), phase_keys=(),
        group=sop, group_label=label, spacing_source=source)


def _label(ds: Dataset, sop: str, modality: str) -> str:
    number = _int(ds.get("InstanceNumber"))
    kind = "dose" if modality == "RTDOSE" else ("cine" if frame_times(ds) else "frames")
    return f"{kind} {number if number is not None else sop}"


def _placed(ds: Dataset, source: Dataset, where: str) -> Tuple[np.ndarray, Tuple[float, ...]]:
    position = source.get("ImagePositionPatient", ds.get("ImagePositionPatient"))
    orientation = source.get("ImageOrientationPatient", ds.get("ImageOrientationPatient"))
    return (np.array(_floats(position, 3, "ImagePositionPatient", where)),
            tuple(_floats(orientation, 6, "ImageOrientationPatient", where)))


def _slice_step(ds: Dataset, where: str) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = _positive(ds.get(keyword))
        if value:
            return value
    raise GeometryError(f"{where}: an NM reconstruction needs SpacingBetweenSlices or SliceThickness")


def _normal(orientation: Sequence[float]) -> np.ndarray:
    row, column = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row / np.linalg.norm(row), column / np.linalg.norm(column))
    return normal / np.linalg.norm(normal)


def _image_type(ds: Dataset) -> Tuple[str, ...]:
    value: Any = ds.get("ImageType") or ()
    values = [value] if isinstance(value, str) else list(value)
    return tuple(str(v).upper() for v in values)


def _positive(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number > 0 and np.isfinite(number) else 0.0
