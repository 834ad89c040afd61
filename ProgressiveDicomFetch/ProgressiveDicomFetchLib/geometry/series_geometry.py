"""Series metadata -> the volumes it holds, each with its exact geometry, before any pixel arrives.

The volume layout follows Slicer's DICOMScalarVolumePlugin: slices sorted along row x column
cosines (never by InstanceNumber), i along the rows' direction by the column spacing, j along
the columns' direction by the row spacing, LPS -> RAS by negating x and y; IJK is right-handed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
from pydicom import Dataset

from ..pixels import PixelDescription, UnsupportedPixels, modality_dtype
from .frames import FrameGeometry, GeometryError, frames_of
from .grid import ijk_to_lps, normal_of, slice_grid
from .plain_frames import DEFAULT_SPACING, frame_times
from .stacks import Stack, group_frames

logger = logging.getLogger(__name__)
# What wrongly typed metadata values raise deep down; reported as GeometryError for the instance.
MALFORMED = (TypeError, IndexError, KeyError, AttributeError, OverflowError, ZeroDivisionError)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
NON_IMAGE_MODALITIES = {"SR", "SEG", "RTSTRUCT", "RTPLAN", "PR", "KO", "REG", "DOC", "RWV"}
KINDS = ("volume", "image", "colour", "cine", "dose")  # what a loadable volume is (the series table says it)


@dataclass
class VolumeGeometry:
    """One volume of a series: shape, IJK->LPS/RAS, and which frame fills each slice k."""

    series_uid: str
    label: str
    slices: List[Optional[FrameGeometry]]  # index k; None where no frame exists (filled later)
    ijk_to_lps: np.ndarray
    ijk_to_lps_exact: np.ndarray  # differs from ijk_to_lps only for gantry tilt (sheared)
    spacing: Tuple[float, float, float]  # (i, j, k) in mm
    pixels: PixelDescription
    dtype: np.dtype  # modality values: int16 if they all fit, int32 if integral, else float32
    padding_value: Optional[float]  # PixelPaddingValue in modality units (kept as is, like Slicer)
    dataset: Dataset = field(repr=False)  # a representative instance (windows, names)
    missing: List[int] = field(default_factory=list)
    tilt_deg: float = 0.0
    messages: List[str] = field(default_factory=list)
    kind: str = "volume"  # one of KINDS
    frame_times_ms: Optional[List[float]] = None  # cine: each frame's time from the first

    @property
    def shape(self) -> Tuple[int, int, int]:
        first = next(f for f in self.slices if f is not None)
        return len(self.slices), first.rows, first.columns

    @property
    def components(self) -> int:
        """3 for colour (RGB voxels, the buffer is (K, J, I, 3)), else 1."""
        return self.pixels.components

    @property
    def buffer_shape(self) -> Tuple[int, ...]:
        return self.shape + ((self.components,) if self.components > 1 else ())

    @property
    def ijk_to_ras(self) -> np.ndarray:
        return LPS_TO_RAS @ self.ijk_to_lps

    @property
    def frames(self) -> List[FrameGeometry]:
        return [f for f in self.slices if f is not None]

    @property
    def instance_uids(self) -> List[str]:
        """SOPInstanceUIDs in slice order (as the DICOM plugins set `DICOM.instanceUIDs`)."""
        seen: List[str] = []
        for frame in self.frames:
            if not seen or seen[-1] != frame.sop_instance_uid:
                seen.append(frame.sop_instance_uid)
        return seen

    def rescales(self) -> List[Tuple[float, float]]:
        return sorted({(f.slope, f.intercept) for f in self.frames})


@dataclass
class SeriesGeometry:
    series_uid: str
    volumes: List[VolumeGeometry]
    set_aside: List[Tuple[str, str]] = field(default_factory=list)  # (SOPInstanceUID, reason)
    messages: List[str] = field(default_factory=list)


def series_geometry(instances: Sequence[Any], series_uid: str = "") -> SeriesGeometry:
    """Instances are pydicom Datasets or records with a `.dataset` (e.g. `InstanceMetadata`)."""
    datasets = [getattr(item, "dataset", item) for item in instances]
    if not datasets:
        raise GeometryError(f"series {series_uid}: no instances")
    series_uid = series_uid or str(datasets[0].get("SeriesInstanceUID", ""))
    images, skipped = _image_datasets(datasets)
    if not images:
        modality = datasets[0].get("Modality", "?")
        reasons = sorted({reason for _, reason in skipped})
        raise GeometryError(f"series {series_uid} holds no images (Modality {modality}; {', '.join(reasons)}): "
                            "nothing to load as a volume")
    frames: List[FrameGeometry] = []
    by_sop = {}
    for ds in images:
        sop = str(ds.get("SOPInstanceUID", ""))
        try:
            frames += frames_of(ds, sop)
        except MALFORMED as error:  # values of the wrong type or shape, from a broken server
            raise GeometryError(f"instance {sop}: malformed geometry attributes ({type(error).__name__}: {error})") from None
        by_sop[sop] = ds
    stacks, set_aside = group_frames(frames)
    set_aside = skipped + set_aside
    result = SeriesGeometry(series_uid, [], set_aside)
    for sop, reason in set_aside:
        result.messages.append(f"set aside {sop}: {reason}")
    for stack in stacks:
        try:
            result.volumes.append(_volume(series_uid, stack, by_sop))
        except ValueError as error:  # GeometryError, UnsupportedPixels, bad pixel attributes
            result.messages.append(f"stack {stack.label or 'main'} cannot be loaded: {error}")
        except MALFORMED as error:
            result.messages.append(f"stack {stack.label or 'main'} cannot be loaded: malformed pixel attributes "
                                   f"({type(error).__name__}: {error})")
    if not result.volumes:
        raise GeometryError(f"series {series_uid}: " + "; ".join(result.messages))
    for message in result.messages + [m for v in result.volumes for m in v.messages]:
        logger.info("series %s: %s", series_uid, message)
    return result


def _image_datasets(datasets: List[Dataset]) -> Tuple[List[Dataset], List[Tuple[str, str]]]:
    images, skipped = [], []
    for ds in datasets:
        sop = str(ds.get("SOPInstanceUID", ""))
        if str(ds.get("Modality", "")).upper() in NON_IMAGE_MODALITIES:
            skipped.append((sop, f"not an image (Modality {ds.get('Modality', '?')})"))
        elif "Rows" not in ds or "Columns" not in ds:
            skipped.append((sop, "not an image (no Rows/Columns)"))
        else:
            images.append(ds)
    return images, skipped


def _volume(series_uid: str, stack: Stack, by_sop: dict) -> VolumeGeometry:
    first = stack.frames[0]
    normal = normal_of(first.orientation)
    positions = np.array([f.position for f in stack.frames], float)
    dataset = by_sop[first.sop_instance_uid]
    grid = slice_grid(positions, normal, _single_slice_spacing(dataset))
    slices: List[Optional[FrameGeometry]] = [None] * grid.size
    for index, frame in zip(grid.indices, stack.frames):
        slices[index] = frame
    origin = positions[0]
    matrix = ijk_to_lps(origin, first.orientation, first.pixel_spacing, normal * grid.spacing)
    exact = ijk_to_lps(origin, first.orientation, first.pixel_spacing, grid.step)
    messages = list(grid.messages)
    rescales = {(f.slope, f.intercept) for f in stack.frames}
    if len(rescales) > 1:
        messages.append("rescale slope/intercept differ between frames: each frame is rescaled with its own")
    if first.spacing_source == DEFAULT_SPACING:
        messages.append("no PixelSpacing, ImagerPixelSpacing or NominalScannedPixelSpacing: 1 mm pixels assumed")
    pixels = PixelDescription.from_dataset(dataset)
    if dataset.get("ModalityLUTSequence") and pixels.components == 1:  # never rescale it wrongly
        raise UnsupportedPixels("a Modality LUT Sequence (a lookup table in place of rescale slope and "
                                "intercept) is not supported")
    dtype = _volume_dtype(pixels, dataset, rescales)
    padding = dataset.get("PixelPaddingValue")
    padding_value = None if padding in (None, "") or pixels.components > 1 \
        else float(padding) * first.slope + first.intercept
    kind = _kind(dataset, stack, pixels)
    return VolumeGeometry(series_uid=series_uid, label=stack.label, slices=slices, ijk_to_lps=matrix,
                          ijk_to_lps_exact=exact, spacing=(first.pixel_spacing[1], first.pixel_spacing[0], grid.spacing),
                          pixels=pixels, dtype=dtype, padding_value=padding_value, dataset=dataset,
                          missing=grid.missing, tilt_deg=grid.tilt_deg, messages=messages, kind=kind,
                          frame_times_ms=frame_times(dataset) if first.group and len(stack.frames) > 1 else None)


def _kind(dataset: Dataset, stack: Stack, pixels: PixelDescription) -> str:
    if str(dataset.get("Modality", "")).upper() == "RTDOSE":
        return "dose"
    if pixels.components > 1:
        return "colour"
    first = stack.frames[0]
    if first.group and len(stack.frames) > 1:
        return "cine" if frame_times(dataset) else "volume"
    return "image" if first.group else "volume"


def _volume_dtype(pixels: PixelDescription, dataset: Dataset, rescales) -> np.dtype:
    """RGB: the samples' (or the palette's entries') unsigned type; dose: float32 Gy; float pixels:
    their own float type; greyscale: the narrowest exact type of the rescaled values."""
    if pixels.photometric_interpretation == "PALETTE COLOR":
        descriptor = dataset.get("RedPaletteColorLookupTableDescriptor") or [0, 0, 16]
        return np.dtype(np.uint8 if int(descriptor[2]) == 8 else np.uint16)
    if pixels.components > 1:
        return np.dtype(f"u{pixels.bits_allocated // 8}")
    if pixels.float_pixels:
        return np.dtype(np.float64 if pixels.bits_allocated == 64 else np.float32)
    if str(dataset.get("Modality", "")).upper() == "RTDOSE":
        return np.dtype(np.float32)
    return _common_dtype([modality_dtype(slope, intercept, pixels.stored_range) for slope, intercept in rescales])


def _common_dtype(dtypes: List[np.dtype]) -> np.dtype:
    """One dtype that holds every frame's values exactly (float32 as soon as one frame needs it)."""
    kinds = {np.dtype(d) for d in dtypes}
    if kinds <= {np.dtype(np.int16)}:
        return np.dtype(np.int16)
    if kinds <= {np.dtype(np.int16), np.dtype(np.int32)}:
        return np.dtype(np.int32)
    return np.dtype(np.float32)


def _single_slice_spacing(ds: Dataset) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            value = float(ds.get(keyword) or 0)
        except (TypeError, ValueError):
            value = 0.0
        if value > 0:
            return value
    return 1.0
