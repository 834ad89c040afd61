"""The record every frame becomes (`FrameGeometry`), the error for metadata that cannot give a
correct volume, and the readers of metadata values both frame readers use."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

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


def first_item(ds: Optional[Dataset], keyword: str) -> Optional[Dataset]:
    if ds is None:
        return None
    sequence = ds.get(keyword)
    return sequence[0] if sequence else None


def floats(value: Any, count: int, keyword: str, where: str) -> List[float]:
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


def as_int(value: Any) -> Optional[int]:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None
